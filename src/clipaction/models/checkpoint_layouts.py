"""What each recommended hub checkpoint ships for preprocessing, as data.

One `CheckpointLayout` per hub id of the catalog (`models.catalog`): the processor class, the
image (or video) processor class, the tokenizer class, the preprocessing keys (resize rule,
crop, resampling filter, rescale, mean/std, patch settings) and the text padding, each row with
a `source` saying where its facts come from and which of them are not certain.

The tiny random test models (`models.tiny`, `tiny_families`, `tiny_video`) are built from these
rows: same classes, same keys, only the dimensions shrunk (`DIMENSION_KEYS`). A fidelity test
on a tiny model therefore exercises the preprocessing a real checkpoint gets; a tiny model built
with another processor than its checkpoint's proves nothing about the real one (the X-CLIP crash
of issue 19 hid behind exactly that).

Conventions: class names are transformers 5's base names. A saved "...ImageProcessorPil",
"...ImageProcessorFast" or a legacy "...FeatureExtractor" loads as the same base class (see
`processor_files.canonical_class`). Preprocessing keys are written as transformers 5 reads them
(size dicts, PIL resample codes: 2 bilinear, 3 bicubic), even where the hub file spells them
the legacy way (`"size": 224`). Only the keys listed are asserted on a tiny model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
HALF = [0.5, 0.5, 0.5]
RESCALE = 1 / 255

#: Preprocessing keys that are model dimensions: a tiny model shrinks them with its input size
#: (their structure, e.g. shortest_edge vs height/width, stays the checkpoint's).
DIMENSION_KEYS = ("size", "crop_size", "patch_size", "max_num_patches")


@dataclass(frozen=True)
class CheckpointLayout:
    """The preprocessing files of one hub checkpoint, as transformers 5 reads them."""

    hub_id: str
    #: config.json's model_type (the clipaction family that serves it)
    family: str
    processor_class: str
    tokenizer_class: str
    #: preprocessing keys of the image (or video) processor, real dimensions
    preprocessing: dict[str, Any]
    #: where the facts come from; says which keys are uncertain
    source: str
    image_processor_class: str | None = None
    video_processor_class: str | None = None
    #: tokenizer_config.json keys known for this checkpoint (others are not asserted)
    tokenizer: dict[str, Any] = field(default_factory=dict)
    #: how text is padded for this model (its model card / processor): to the longest text of a
    #: batch, or to `text_max_length` tokens
    text_padding: Literal["longest", "max_length"] = "longest"
    text_max_length: int = 77

    @property
    def preprocessor_class(self) -> str:
        """The image processor class, or the video processor class for video processors."""
        return self.image_processor_class or str(self.video_processor_class)

    def shrunk(self, side: int | None = None, **dimensions: Any) -> dict[str, Any]:
        """The preprocessing keys with the dimensions of a smaller model: every value in `size`
        and `crop_size` becomes `side`; `dimensions` (patch_size, max_num_patches) replace
        theirs. Nothing else changes."""
        unknown = set(dimensions) - set(DIMENSION_KEYS)
        if unknown:
            raise ValueError(f"only dimensions shrink ({', '.join(DIMENSION_KEYS)}); got {sorted(unknown)}")
        settings = copy.deepcopy(self.preprocessing)
        if side is not None:
            for key in ("size", "crop_size"):
                if isinstance(settings.get(key), dict):
                    settings[key] = {name: side for name in settings[key]}
        settings.update(dimensions)
        return settings


def _clip_image(side: int) -> dict[str, Any]:
    """CLIPImageProcessor's keys at `side` px: shortest edge, centre crop, bicubic, CLIP mean/std."""
    return {
        "do_convert_rgb": True,
        "do_resize": True,
        "size": {"shortest_edge": side},
        "resample": 3,
        "do_center_crop": True,
        "crop_size": {"height": side, "width": side},
        "do_rescale": True,
        "rescale_factor": RESCALE,
        "do_normalize": True,
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
    }


def _openai_clip(hub_id: str) -> CheckpointLayout:
    return CheckpointLayout(
        hub_id=hub_id,
        family="clip",
        processor_class="CLIPProcessor",
        image_processor_class="CLIPImageProcessor",
        tokenizer_class="CLIPTokenizer",
        preprocessing=_clip_image(224),
        tokenizer={"model_max_length": 77, "pad_token": "<|endoftext|>"},
        source=f"preprocessor_config.json of {hub_id} on the hub (legacy CLIPFeatureExtractor keys: size 224, "
        "crop_size 224, resample 3, CLIP's mean/std; do_rescale, rescale_factor and do_convert_rgb are not in the "
        "file and come from CLIPImageProcessor's defaults) and its tokenizer_config.json (CLIPTokenizer, "
        "model_max_length 77, pad <|endoftext|>); padding to the longest text as its model card calls the processor",
    )


_XCLIP_IMAGE = {
    "do_resize": True,
    "size": {"shortest_edge": 224},
    "resample": 2,
    "do_center_crop": True,
    "crop_size": {"height": 224, "width": 224},
    "do_rescale": True,
    "rescale_factor": RESCALE,
    "do_normalize": True,
    "image_mean": IMAGENET_MEAN,
    "image_std": IMAGENET_STD,
}
_XCLIP_SOURCE = (
    "preprocessor_config.json of {hub_id} on the hub (its current revision, read through the library's "
    "search of huggingface.co on 2026-12-03; microsoft/xclip-base-patch32 commit e437ef9 'Update "
    "preprocessor_config.json' replaced an earlier CLIPFeatureExtractor file with this one): "
    "feature_extractor_type VideoMAEFeatureExtractor (loads as VideoMAEImageProcessor), size 224 (an int: "
    "the shortest edge), do_center_crop with no crop_size (VideoMAE's default 224), resample 2 (bilinear), "
    "ImageNet's image_mean [0.485, 0.456, 0.406] and image_std [0.229, 0.224, 0.225] (not CLIP's), "
    "processor_class XCLIPProcessor; tokenizer: openai/clip-vit-base-patch32's CLIPTokenizer "
    "(model_max_length 77), as transformers' X-CLIP conversion script builds the processor"
)


def _xclip(hub_id: str) -> CheckpointLayout:
    """An X-CLIP checkpoint: every released one ships the same processor files (see the source)."""
    return CheckpointLayout(
        hub_id=hub_id,
        family="xclip",
        processor_class="XCLIPProcessor",
        image_processor_class="VideoMAEImageProcessor",
        tokenizer_class="CLIPTokenizer",
        preprocessing=_XCLIP_IMAGE,
        tokenizer={"model_max_length": 77, "pad_token": "<|endoftext|>"},
        source=_XCLIP_SOURCE.format(hub_id=hub_id),
    )


LAYOUTS: tuple[CheckpointLayout, ...] = (
    _openai_clip("openai/clip-vit-base-patch32"),
    _openai_clip("openai/clip-vit-base-patch16"),
    _openai_clip("openai/clip-vit-large-patch14"),
    CheckpointLayout(
        hub_id="facebook/metaclip-2-worldwide-huge-quickgelu",
        family="metaclip_2",
        processor_class="CLIPProcessor",
        image_processor_class="CLIPImageProcessor",
        tokenizer_class="XLMRobertaTokenizer",
        preprocessing=_clip_image(224),
        tokenizer={"pad_token": "<pad>"},
        source="transformers' MetaCLIP 2 documentation and model card (CLIPProcessor: CLIPImageProcessor at 224, "
        "shortest edge + centre crop, bicubic, CLIP's mean/std; an XLM-R kind of tokenizer, the XLM-V vocabulary "
        "of facebook/xlm-v-base, end-of-text id 2); padding to the longest text as the docs call it. UNCERTAIN: "
        "written from memory, the hub files' exact keys not seen; tokenizer model_max_length unknown (not asserted: "
        "clipaction truncates at the text config's 77 positions)",
    ),
    CheckpointLayout(
        hub_id="google/siglip-base-patch16-224",
        family="siglip",
        processor_class="SiglipProcessor",
        image_processor_class="SiglipImageProcessor",
        tokenizer_class="SiglipTokenizer",
        preprocessing={
            "do_resize": True,
            "size": {"height": 224, "width": 224},
            "resample": 3,
            "do_rescale": True,
            "rescale_factor": RESCALE,
            "do_normalize": True,
            "image_mean": HALF,
            "image_std": HALF,
        },
        tokenizer={"model_max_length": 64, "pad_token": "</s>"},
        text_padding="max_length",
        text_max_length=64,
        source="preprocessor_config.json of google/siglip-base-patch16-224 on the hub (SiglipImageProcessor: "
        "resize to 224x224 without crop, resample 3 bicubic, rescale 1/255, mean/std 0.5) and tokenizer_config.json "
        "(SiglipTokenizer, model_max_length 64, pad </s>); padding='max_length' as its model card and transformers' "
        "SigLIP docs say the model was trained",
    ),
    CheckpointLayout(
        hub_id="google/siglip2-base-patch16-224",
        family="siglip",
        processor_class="SiglipProcessor",
        image_processor_class="SiglipImageProcessor",
        tokenizer_class="GemmaTokenizer",
        preprocessing={
            "do_resize": True,
            "size": {"height": 224, "width": 224},
            "resample": 2,
            "do_rescale": True,
            "rescale_factor": RESCALE,
            "do_normalize": True,
            "image_mean": HALF,
            "image_std": HALF,
        },
        tokenizer={"pad_token": "<pad>"},
        text_padding="max_length",
        text_max_length=64,
        source="config.json model_type 'siglip' (a SiglipModel), SiglipProcessor + SiglipImageProcessor (224x224, no "
        "crop, mean/std 0.5) + GemmaTokenizer (pad <pad>), as the hub ships the fixed-resolution SigLIP 2 "
        "checkpoints; padding='max_length', max_length=64 from its model card ('the model was trained with this'). "
        "UNCERTAIN: resample 2 (bilinear, as big_vision and Siglip2ImageProcessor resize) is from memory of the file; "
        "the tokenizer's model_max_length is not 64 as far as known (the card passes max_length=64), so not asserted",
    ),
    CheckpointLayout(
        hub_id="google/siglip2-base-patch16-naflex",
        family="siglip2",
        processor_class="Siglip2Processor",
        image_processor_class="Siglip2ImageProcessor",
        tokenizer_class="GemmaTokenizer",
        preprocessing={
            "do_resize": True,
            "resample": 2,
            "do_rescale": True,
            "rescale_factor": RESCALE,
            "do_normalize": True,
            "image_mean": HALF,
            "image_std": HALF,
            "patch_size": 16,
            "max_num_patches": 256,
        },
        tokenizer={"pad_token": "<pad>"},
        text_padding="max_length",
        text_max_length=64,
        source="preprocessor_config.json of google/siglip2-base-patch16-naflex on the hub (Siglip2ImageProcessor: "
        "patch_size 16, max_num_patches 256, resample 2 bilinear, rescale 1/255, mean/std 0.5; processor_class "
        "Siglip2Processor) and tokenizer_config.json (GemmaTokenizer; transformers 5 loads model_type siglip2 with "
        "its lowercasing Siglip2Tokenizer whatever the file says); padding='max_length', max_length 64 as "
        "Siglip2Processor's defaults and the model card. UNCERTAIN: the file may name the ...Fast image processor "
        "class (loads as the same class); tokenizer model_max_length not asserted",
    ),
    _xclip("microsoft/xclip-base-patch32"),
    _xclip("microsoft/xclip-base-patch16-zero-shot"),
    CheckpointLayout(
        hub_id="google/videoprism-lvt-base-f16r288",
        family="videoprism",
        processor_class="VideoPrismProcessor",
        video_processor_class="LlavaOnevisionVideoProcessor",
        tokenizer_class="VideoPrismTokenizer",
        preprocessing={
            "do_resize": True,
            "size": {"height": 288, "width": 288},
            "resample": 3,
            "do_rescale": True,
            "rescale_factor": RESCALE,
            "do_normalize": False,
        },
        text_padding="max_length",
        text_max_length=64,
        source="transformers 5.24's VideoPrismProcessor (video defaults: 288x288, do_normalize False; text: "
        "padding max_length, max_length 64), the video processor the auto mapping gives model_type videoprism "
        "(LlavaOnevisionVideoProcessor: bicubic, rescale 1/255) and its VideoPrismTokenizer. UNCERTAIN: the hub "
        "repo's own files were not seen (whether it ships video_preprocessor_config.json or processor_config.json, "
        "and its tokenizer_config keys); clipaction reads the saved video settings over these defaults",
    ),
)


def layout_for(hub_id: str) -> CheckpointLayout:
    """The layout row of `hub_id` (a KeyError names the known ids)."""
    for layout in LAYOUTS:
        if layout.hub_id == hub_id:
            return layout
    raise KeyError(f"no checkpoint layout for {hub_id!r}; known: {', '.join(row.hub_id for row in LAYOUTS)}")
