"""Random-weight clip-level video models (X-CLIP, VideoPrism) built offline, saved like a
downloaded one.

As `clipaction.testing.tiny_clip` does for CLIP: a config, random weights from a seeded generator and
an offline tokenizer, written with `save_pretrained` so the folder loads through exactly the
code path a hub id takes. Every build is the same, byte for byte. A random model's numbers mean
nothing about actions.

Each is laid out as the hub checkpoint it stands for (`HUB_LAYOUTS`, facts in
`checkpoint_layouts`). X-CLIP: `XCLIPProcessor` with the checkpoints' `VideoMAEImageProcessor`
(shortest edge, centre crop, bilinear) and CLIP's tokenizer (`tiny.build_tokenizer`), files as
on the hub (`tiny.save_hub_layout`). VideoPrism: a T5-style Unigram tokenizer (built here from a
fixed vocabulary, no SentencePiece training) and a video processor that needs torchvision in
transformers; its preprocessing settings are written as the `video_preprocessor_config.json`
that processor would save.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clipaction.models.checkpoint_layouts import layout_for
from clipaction.testing.tiny_clip import WHOLE_WORDS, build_tokenizer, image_processor_for, save_hub_layout, seeded_init

#: The hub checkpoint each tiny model mirrors (classes and preprocessing keys).
HUB_LAYOUTS = {"xclip": "microsoft/xclip-base-patch32", "videoprism": "google/videoprism-lvt-base-f16r288"}

#: Tiny shapes (seconds to build and run on a CPU). "base" shapes have the real compute.
XCLIP_SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {
        "text_config": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
        },
        "vision_config": {
            "hidden_size": 48,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
            "num_frames": 4,
            # X-CLIP needs mit_hidden_size == projection_dim (the MIT runs on projected features)
            "mit_hidden_size": 32,
            "mit_intermediate_size": 64,
            "mit_num_hidden_layers": 1,
            "mit_num_attention_heads": 2,
        },
        "projection_dim": 32,
        "prompt_layers": 1,
        "prompt_num_attention_heads": 2,
    },
    # microsoft/xclip-base-patch32: ViT-B/32, 8 frames at 224
    "base-patch32": {
        "text_config": {"max_position_embeddings": 77},
        "vision_config": {"image_size": 224, "patch_size": 32, "num_frames": 8},
        "projection_dim": 512,
    },
}

VIDEOPRISM_SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {
        "text_config": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 64,
        },
        "vision_config": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 2,
            "image_size": 32,
            "tubelet_size": [1, 8, 8],
            "num_frames": 4,
            "num_spatial_layers": 1,
            "num_temporal_layers": 1,
            "num_auxiliary_layers": 1,
        },
    },
    # google/videoprism-lvt-base-f16r288: 16 frames at 288 px (vocabulary of the real 32k size)
    "base": {
        "text_config": {"max_position_embeddings": 64},
        "vision_config": {"image_size": 288, "num_frames": 16},
    },
}


def build_videoprism_tokenizer():
    """A VideoPrismTokenizer (T5-style Unigram) from a fixed vocabulary: the specials, the
    prompt and class words of `tiny.WHOLE_WORDS` as whole pieces, and single letters, digits
    and punctuation so any text tokenizes. The same on every build (nothing is trained)."""
    from transformers import VideoPrismTokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    words = sorted(set(WHOLE_WORDS.split()))
    pieces += [("▁" + word, -5.0 - 0.01 * i) for i, word in enumerate(words)]
    chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,'-_!?:;()/"
    pieces += [(char, -10.0) for char in chars] + [("▁" + char, -9.0) for char in chars]
    return VideoPrismTokenizer(vocab=pieces, extra_ids=0)


def _build_xclip(out_dir: Path, shape: dict[str, Any], seed: int) -> None:
    from transformers import XCLIPConfig, XCLIPModel, XCLIPProcessor

    layout = layout_for(HUB_LAYOUTS["xclip"])
    tokenizer = build_tokenizer(**layout.tokenizer)
    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vocab_size = len(tokenizer) if shape["text_config"].get("hidden_size") else 49408
    config = XCLIPConfig(
        text_config={**shape["text_config"], **special, "vocab_size": vocab_size},
        vision_config=shape["vision_config"],
        **{k: v for k, v in shape.items() if k not in {"text_config", "vision_config"}},
    )
    model = seeded_init(seed, lambda: XCLIPModel(config))
    image_processor = image_processor_for(layout, int(config.vision_config.image_size))
    model.save_pretrained(out_dir)
    save_hub_layout(XCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer), out_dir)


def _build_videoprism(out_dir: Path, shape: dict[str, Any], seed: int) -> None:
    from transformers import VideoPrismClipModel, VideoPrismConfig

    tokenizer = build_videoprism_tokenizer()
    tiny = "hidden_size" in shape["text_config"]
    text_config = {**shape["text_config"], "vocab_size": len(tokenizer) if tiny else 32000, "pad_token_id": 0}
    config = VideoPrismConfig(text_config=text_config, vision_config=shape["vision_config"])
    model = seeded_init(seed, lambda: VideoPrismClipModel(config))
    model.save_pretrained(out_dir)
    layout = layout_for(HUB_LAYOUTS["videoprism"])
    tokenizer.save_pretrained(out_dir)
    # What transformers' VideoPrismProcessor (a LlavaOnevisionVideoProcessor with the
    # processor's video defaults) writes; built by hand because that class needs torchvision.
    settings = {
        "video_processor_type": layout.video_processor_class,
        "processor_class": layout.processor_class,
        **layout.shrunk(int(config.vision_config.image_size)),
        "do_center_crop": None,
        "do_convert_rgb": True,
        "do_sample_frames": True,
        "num_frames": int(config.vision_config.num_frames),
    }
    (out_dir / "video_preprocessor_config.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


_BUILDERS = {"xclip": (_build_xclip, XCLIP_SHAPES), "videoprism": (_build_videoprism, VIDEOPRISM_SHAPES)}


def build_random_video_model(out_dir: str | Path, family: str, seed: int = 0, shape: str = "tiny") -> Path:
    """Write a random `family` model ("xclip" or "videoprism") of `shape` ("tiny", or the real
    base size) with its tokenizer and preprocessing settings to `out_dir`; returns it."""
    if family not in _BUILDERS:
        raise ValueError(f"family must be one of {', '.join(_BUILDERS)}; got {family!r}")
    build, shapes = _BUILDERS[family]
    if shape not in shapes:
        raise ValueError(f"shape must be one of {', '.join(shapes)}; got {shape!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    build(out, shapes[shape], seed)
    return out
