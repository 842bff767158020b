"""Random-weight models of the other frame families, built offline and saved like downloads.

`build_random_model(out_dir, variant)` writes a tiny random model of one variant laid out as
the hub checkpoint it stands for (`HUB_LAYOUTS`); `VARIANT_FAMILY` says which registered family
(model_type) each loads as. A variant is a builder name, not a family: "siglip2-fixed" loads as
the "siglip" family, and only "siglip2-naflex" is the "siglip2" family: that checkpoint's processor, image processor and
tokenizer classes and preprocessing keys (`checkpoint_layouts`), only the dimensions shrunk. The
tokenizers are built from a fixed vocabulary (never trained, so every build is the same byte for
byte):

- "metaclip_2": `MetaClip2Model` + `CLIPProcessor` with an XLM-R (Unigram) tokenizer whose
  end-of-text id is 2, as in the released weights (CLIP's text model would pool elsewhere).
- "siglip": `SiglipModel` + `SiglipProcessor` with a SentencePiece `SiglipTokenizer` (the
  spiece.model is written from a ModelProto, not trained).
- "siglip2-fixed": a fixed-resolution SigLIP 2 as the hub ships them: `SiglipModel` (model_type
  "siglip") with a Gemma (BPE, byte fallback) tokenizer.
- "siglip2-naflex": `Siglip2Model` + `Siglip2Processor` with a Gemma tokenizer and a saved
  `max_num_patches` smaller than the processor's own default.

A random model's numbers mean nothing about actions.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from clipaction.models.checkpoint_layouts import layout_for
from clipaction.testing.tiny_clip import WHOLE_WORDS, image_processor_for, save_hub_layout, seeded_init

#: The hub checkpoint each tiny model mirrors (classes and preprocessing keys; see module doc).
HUB_LAYOUTS = {
    "metaclip_2": "facebook/metaclip-2-worldwide-huge-quickgelu",
    "siglip": "google/siglip-base-patch16-224",
    "siglip2-fixed": "google/siglip2-base-patch16-224",
    "siglip2-naflex": "google/siglip2-base-patch16-naflex",
}

#: Extra words the tests' labels use, so they are whole tokens too.
_EXTRA_WORDS = "juggling soccer ball shooting riding bike"
_SIDE = 32  # input side of the fixed-resolution tiny models
_PATCH = 8
_TEXT_POSITIONS = 64  # SigLIP's text length (and Siglip2Processor's max_length)

_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
_VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}


def _words() -> list[str]:
    return sorted(set(WHOLE_WORDS.split()) | set(_EXTRA_WORDS.split()))


def _characters() -> list[str]:
    return list(string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation)


def _unigram_pieces() -> list[tuple[str, float]]:
    """Word pieces (likely) and single characters (unlikely), SentencePiece style ("▁" starts a
    word): whole words win, anything else ASCII is spelled out."""
    pieces = [("▁" + word, -1.0) for word in _words()]
    pieces += [("▁", -4.0)] + [(char, -8.0) for char in _characters()]
    return pieces


def xlmr_tokenizer(model_max_length: int = 77):
    """An XLM-R style Unigram tokenizer (MetaCLIP 2's kind): <s>=0, <pad>=1, </s>=2."""
    from transformers import XLMRobertaTokenizer

    specials = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab = [*specials, *_unigram_pieces(), ("<mask>", 0.0)]
    return XLMRobertaTokenizer(vocab=vocab, model_max_length=model_max_length)


def write_sentencepiece_model(path: Path) -> Path:
    """A SentencePiece Unigram model (unk=0, </s>=1) written from a ModelProto."""
    from sentencepiece import sentencepiece_model_pb2 as sp_model

    proto = sp_model.ModelProto()
    piece_type = sp_model.ModelProto.SentencePiece.Type
    for piece, score, kind in [("<unk>", 0.0, piece_type.UNKNOWN), ("</s>", 0.0, piece_type.CONTROL)]:
        proto.pieces.add(piece=piece, score=score, type=kind)
    for piece, score in _unigram_pieces():
        proto.pieces.add(piece=piece, score=score, type=piece_type.NORMAL)
    trainer = proto.trainer_spec
    trainer.model_type = sp_model.TrainerSpec.UNIGRAM
    trainer.vocab_size = len(proto.pieces)
    trainer.unk_id, trainer.eos_id, trainer.bos_id, trainer.pad_id = 0, 1, -1, -1
    normalizer = proto.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = True
    normalizer.remove_extra_whitespaces = True
    normalizer.escape_whitespaces = True
    path.write_bytes(proto.SerializeToString())
    return path


def siglip_tokenizer(work_dir: Path):
    """SigLIP's SentencePiece tokenizer over a written spiece.model (pad = eos = </s>)."""
    from transformers import SiglipTokenizer

    model_file = write_sentencepiece_model(work_dir / "spiece.model")
    return SiglipTokenizer(vocab_file=str(model_file), model_max_length=_TEXT_POSITIONS)


def gemma_tokenizer():
    """A Gemma style BPE tokenizer (SigLIP 2's kind): <pad>=0, <eos>=1, <bos>=2, <unk>=3, byte
    fallback for any character, merges that spell the vocabulary's words ("▁" marks a space).
    No model_max_length of 64 (see the SigLIP 2 rows of `checkpoint_layouts`): the text length
    comes from the caller, as SigLIP 2's model card passes max_length=64."""
    from transformers import GemmaTokenizer

    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    tokens += [f"<0x{byte:02X}>" for byte in range(256)]
    tokens += ["▁", *_characters()]
    merges: list[tuple[str, str]] = []
    for word in _words():
        for spelled in (word, "▁" + word):
            prefix = spelled[0]
            for char in spelled[1:]:
                merges.append((prefix, char))
                prefix += char
                tokens.append(prefix)
    tokens = list(dict.fromkeys(tokens))
    return GemmaTokenizer(vocab={token: i for i, token in enumerate(tokens)}, merges=list(dict.fromkeys(merges)))


#: Model sizes. "base" has a real ViT-B image tower (MetaCLIP 2: B/32 at 224; SigLIP 2: B/16 at
#: 224) for `bench`; its text tower is 2 layers deep, since bench times the image encoder.
SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {
        "side": _SIDE,
        "patch": _PATCH,
        "metaclip_patch": _PATCH,
        "text": _TEXT,
        "vision": _VISION,
        "projection": 24,
    },
    "base": {
        "side": 224,
        "patch": 16,
        "metaclip_patch": 32,
        "text": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 2, "num_attention_heads": 12},
        "vision": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12},
        "projection": 512,
    },
}


def _metaclip_2(out_dir: Path, seed: int, shape: dict[str, Any] = SHAPES["tiny"]) -> tuple[Any, Any]:
    from transformers import CLIPProcessor, MetaClip2Config, MetaClip2Model

    tokenizer = xlmr_tokenizer()
    config = MetaClip2Config(
        text_config={
            **shape["text"],
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 77,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={**shape["vision"], "image_size": shape["side"], "patch_size": shape["metaclip_patch"]},
        projection_dim=shape["projection"],
    )
    model = seeded_init(seed, lambda: MetaClip2Model(config))
    with torch.no_grad():
        model.logit_scale.fill_(float(torch.log(torch.tensor(100.0))))
    images = image_processor_for(layout_for(HUB_LAYOUTS["metaclip_2"]), shape["side"])
    return model, CLIPProcessor(image_processor=images, tokenizer=tokenizer)


def _siglip_config(tokenizer: Any, vocab_size: int, shape: dict[str, Any] = SHAPES["tiny"]) -> dict[str, Any]:
    return {
        "text_config": {
            **shape["text"],
            "vocab_size": vocab_size,
            "max_position_embeddings": _TEXT_POSITIONS,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        "vision_config": {**shape["vision"], "image_size": shape["side"], "patch_size": shape["patch"]},
    }


def _set_scale_and_bias(model: Any) -> None:
    # SigLIP's released weights have a large scale and a negative bias; random init gives
    # scale exp(N(0,1)). Values of that shape keep sigmoid probabilities away from 0 and 1 here.
    with torch.no_grad():
        model.logit_scale.fill_(float(torch.log(torch.tensor(10.0))))
        model.logit_bias.fill_(-1.0)


def _siglip(out_dir: Path, seed: int) -> tuple[Any, Any]:
    from transformers import SiglipConfig, SiglipModel, SiglipProcessor

    tokenizer = siglip_tokenizer(out_dir)
    config = SiglipConfig(**_siglip_config(tokenizer, len(tokenizer)))
    model = seeded_init(seed, lambda: SiglipModel(config))
    _set_scale_and_bias(model)
    images = image_processor_for(layout_for(HUB_LAYOUTS["siglip"]), _SIDE)
    return model, SiglipProcessor(image_processor=images, tokenizer=tokenizer)


def _siglip2_fixed(out_dir: Path, seed: int, shape: dict[str, Any] = SHAPES["tiny"]) -> tuple[Any, Any]:
    from transformers import SiglipConfig, SiglipModel, SiglipProcessor

    tokenizer = gemma_tokenizer()
    config = SiglipConfig(**_siglip_config(tokenizer, len(tokenizer), shape))
    model = seeded_init(seed, lambda: SiglipModel(config))
    _set_scale_and_bias(model)
    images = image_processor_for(layout_for(HUB_LAYOUTS["siglip2-fixed"]), shape["side"])
    return model, SiglipProcessor(image_processor=images, tokenizer=tokenizer)


#: The naflex model's saved patch budget, the checkpoint's 256 shrunk with the model: smaller
#: than Siglip2Processor's default of 256, the case where trusting the processor's default
#: would change the inputs.
NAFLEX_MAX_PATCHES = 16


def _siglip2_naflex(out_dir: Path, seed: int) -> tuple[Any, Any]:
    from transformers import Siglip2Config, Siglip2Model, Siglip2Processor

    tokenizer = gemma_tokenizer()
    base = _siglip_config(tokenizer, len(tokenizer))
    vision = {**_VISION, "patch_size": _PATCH, "num_patches": NAFLEX_MAX_PATCHES}
    config = Siglip2Config(text_config=base["text_config"], vision_config=vision)
    model = seeded_init(seed, lambda: Siglip2Model(config))
    _set_scale_and_bias(model)
    layout = layout_for(HUB_LAYOUTS["siglip2-naflex"])
    images = image_processor_for(layout, patch_size=_PATCH, max_num_patches=NAFLEX_MAX_PATCHES)
    return model, Siglip2Processor(image_processor=images, tokenizer=tokenizer)


_BUILDERS: dict[str, Callable[[Path, int], tuple[Any, Any]]] = {
    "metaclip_2": _metaclip_2,
    "siglip": _siglip,
    "siglip2-fixed": _siglip2_fixed,
    "siglip2-naflex": _siglip2_naflex,
}

#: What `build_random_model` can build (variants: builder names, see the module docstring).
TINY_VARIANTS = tuple(_BUILDERS)

#: variant -> the registered family (config.json's model_type) its folder loads as.
VARIANT_FAMILY = {
    "metaclip_2": "metaclip_2",
    "siglip": "siglip",
    "siglip2-fixed": "siglip",
    "siglip2-naflex": "siglip2",
}

#: The variants with a "base" shape.
BASE_VARIANTS = ("metaclip_2", "siglip2-fixed")


def build_random_model(out_dir: str | Path, variant: str, seed: int = 0, shape: str = "tiny") -> Path:
    """Write a random model of `variant` (one of TINY_VARIANTS) and its processor to `out_dir`,
    laid out as its HUB_LAYOUTS checkpoint; returns `out_dir`. Deterministic for a given seed.
    `shape` "base" (for BASE_VARIANTS) has a real ViT-B image tower (see SHAPES)."""
    if variant not in _BUILDERS:
        raise ValueError(f"variant must be one of {', '.join(TINY_VARIANTS)}; got {variant!r}")
    if shape != "tiny" and variant not in BASE_VARIANTS:
        raise ValueError(f"shape {shape!r} is built for {', '.join(BASE_VARIANTS)} only; got {variant!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    build = _BUILDERS[variant]
    model, processor = build(out_dir, seed, SHAPES[shape]) if shape != "tiny" else build(out_dir, seed)
    model.save_pretrained(out_dir)
    save_hub_layout(processor, out_dir)
    return out_dir
