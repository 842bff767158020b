"""The image processor's own steps on a batch of video frames, bit for bit, in less time.

transformers' PIL image processors (CLIP's, SigLIP's) take each frame through convert-to-RGB,
channel moves, PIL's resize, a crop, then rescale and normalize as float64/float32 array
passes. For uint8 RGB frames the same numbers come from: PIL's very resize call (same size,
filter and reducing_gap), the same integer crop, and one table lookup per channel, because
rescale and normalize map each of the 256 byte values to one float32
(float32(v * rescale_factor) - mean) / std, computed here with the same float64 and float32
operations. About 2.8 -> 1.6 ms of CPU per 320x240 frame for ViT-B/32's 224 input (the resize
itself, 1.4 ms, is PIL's own, its vertical pass skipping the columns the crop drops).

Anything else (another processor class or step, padding, frames smaller than the crop, not
uint8 RGB) goes through the processor unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


def preprocess_frames(
    image_processor: Any, frames: np.ndarray | Sequence[np.ndarray], as_bytes: bool = False
) -> torch.Tensor:
    """uint8 RGB frames (N, H, W, 3) -> pixel values (N, 3, S, S) float32, equal to
    `image_processor(images=frames, return_tensors="pt")["pixel_values"]`.

    With `as_bytes`, the frames resized and cropped, before rescaling and normalising: uint8
    (N, 3, S, S), whose `to_pixel_values` are those pixel values (a runtime that normalises in
    its own graph takes these: a quarter of the bytes to move, no lookup on the decoding
    thread). Where the fast path does not apply, pixel values from the processor, float32."""
    images = [np.asarray(frame) for frame in frames]
    plan = _plan(image_processor, images)
    table = value_table(image_processor)
    if plan is None or table is None:
        return image_processor(images=images, return_tensors="pt")["pixel_values"]
    crops = _resized_crops(images, plan)
    return crops if as_bytes else to_pixel_values(crops, table)


def value_table(image_processor: Any) -> np.ndarray | None:
    """(3, 256) float32: the pixel value of byte v in channel c after the processor's rescale
    and normalize, computed with its float64 and float32 operations; None when the processor
    does not map each byte to one value per channel (no rescale or normalize, or another class)."""
    try:
        from transformers.image_processing_backends import PilBackend
    except ImportError:
        return None
    if type(image_processor)._preprocess is not PilBackend._preprocess or getattr(image_processor, "do_pad", False):
        return None
    if not (image_processor.do_rescale and image_processor.do_normalize):
        return None
    mean = _per_channel(image_processor.image_mean)
    std = _per_channel(image_processor.image_std)
    if mean is None or std is None:
        return None
    # transformers' rescale: float64 multiply, then float32; normalize: float32 (x - mean) / std
    scaled = (np.arange(256, dtype=np.float64) * image_processor.rescale_factor).astype(np.float32)
    return (scaled[None, :] - mean[:, None]) / std[:, None]


def to_pixel_values(crops: torch.Tensor, table: np.ndarray) -> torch.Tensor:
    """uint8 (N, 3, S, S) resized, cropped frames -> float32 pixel values through `table`."""
    import torch

    # One lookup in the three channels' tables laid end to end: value v of channel c is entry
    # 256 c + v. uint16 indices: numpy's take with uint8 indices first widens them to intp (8
    # bytes each), which cost 4x the lookup itself.
    index = crops.numpy().astype(np.uint16)
    index += _CHANNEL_OFFSETS
    return torch.from_numpy(table.reshape(-1)[index])


def _resized_crops(images: list[np.ndarray], plan: tuple) -> torch.Tensor:
    """uint8 (N, 3, S, S): each frame resized and cropped by `plan` (`_plan`), PIL's own resize."""
    import torch
    from PIL import Image

    (height, width), (top, left, crop_h, crop_w), resample = plan
    out = np.empty((len(images), crop_h, crop_w, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        source_h, source_w = image.shape[:2]
        if source_h != height and source_w != width and crop_w < width:
            # PIL resizes in two passes, horizontal then vertical, rounding to uint8 between
            # them, and the vertical pass works column by column. So the horizontal pass alone,
            # cut to the crop's columns, then the vertical pass gives the crop's pixels bit for
            # bit, without resizing the columns the crop drops (about 30% of the resize's time
            # for 1280x720 footage, 7% for 320x240).
            wide = Image.fromarray(image).resize((width, source_h), resample=resample, reducing_gap=None)
            columns = wide.crop((left, 0, left + crop_w, source_h))
            image = np.asarray(columns.resize((crop_w, height), resample=resample, reducing_gap=None))
            out[i] = image[top : top + crop_h]
            continue
        if (height, width) != (source_h, source_w):
            image = np.asarray(Image.fromarray(image).resize((width, height), resample=resample, reducing_gap=None))
        out[i] = image[top : top + crop_h, left : left + crop_w]
    return torch.from_numpy(np.ascontiguousarray(out.transpose(0, 3, 1, 2)))


_CHANNEL_OFFSETS = (np.arange(3, dtype=np.uint16) * 256)[None, :, None, None]


def _plan(processor: Any, images: list[np.ndarray]) -> tuple | None:
    """(resize to, crop box, PIL filter) for `images`, or None when the fast path would not
    reproduce the processor exactly (`value_table` checks the processor's other steps)."""
    try:
        from transformers.image_transforms import get_resize_output_image_size
        from transformers.image_utils import ChannelDimension
    except ImportError:
        return None
    if not images or any(i.dtype != np.uint8 or i.ndim != 3 or i.shape[2] != 3 for i in images):
        return None
    if len({image.shape for image in images}) != 1:
        return None
    source = images[0].shape[:2]
    size = processor.size
    if not processor.do_resize:
        target = source
    elif size.shortest_edge and not size.longest_edge:
        target = tuple(
            get_resize_output_image_size(
                images[0], size=size.shortest_edge, default_to_square=False, input_data_format=ChannelDimension.LAST
            )
        )
    elif size.height and size.width and not size.shortest_edge:
        target = (size.height, size.width)
    else:
        return None
    if processor.do_center_crop:
        crop_h, crop_w = processor.crop_size.height, processor.crop_size.width
        top, left = (target[0] - crop_h) // 2, (target[1] - crop_w) // 2
        if top < 0 or left < 0:  # the processor pads: leave it to the processor
            return None
    else:
        (crop_h, crop_w), top, left = target, 0, 0
    resample = int(processor.resample) if processor.resample is not None else 2  # PIL's BILINEAR
    return target, (top, left, crop_h, crop_w), resample


def _per_channel(value: Any) -> np.ndarray | None:
    values = np.atleast_1d(np.asarray(value, dtype=np.float32))
    if values.shape == (1,):
        values = np.repeat(values, 3)
    return values if values.shape == (3,) else None
