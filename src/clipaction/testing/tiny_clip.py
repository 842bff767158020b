"""Random-weight CLIPs built offline, saved like a downloaded one.

Tests and the demo cannot download OpenAI's weights, so they build a model from a config and a
byte-level CLIP tokenizer, and save both into a directory laid out as the hub's checkpoint
(`save_hub_layout`; the processor classes and keys from `checkpoint_layouts`); that directory
then loads through exactly the code path a hub id takes. Every build of a model is the same,
byte for byte. A random model's numbers mean nothing about actions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from clipaction.models.checkpoint_layouts import CheckpointLayout, layout_for

#: The checkpoint whose files `build_random_clip` mirrors (only the dimensions differ).
HUB_LAYOUT = "openai/clip-vit-base-patch32"

#: Model shapes by name. "vit-b-32" has the compute of OpenAI's ViT-B/32 (for speed figures).
ARCHITECTURES: dict[str, dict[str, Any]] = {
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
        },
        "projection_dim": 24,
    },
    "vit-b-32": {
        "text_config": {
            "hidden_size": 512,
            "intermediate_size": 2048,
            "num_hidden_layers": 12,
            "num_attention_heads": 8,
            "max_position_embeddings": 77,
        },
        "vision_config": {
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "image_size": 224,
            "patch_size": 32,
        },
        "projection_dim": 512,
    },
}

#: Words that become single tokens (CLIP lowercases text before tokenizing): the prompt
#: templates' words and the study's class names, spaced and raw, so prompts take about as many
#: tokens as with CLIP's own vocabulary. Any other word is spelled out byte by byte.
WHOLE_WORDS = """
    a an the of person photo video example demonstration using doing during performing practicing
    apply eye makeup lipstick archery baby crawling balance beam band marching baseball pitch
    basketball dunk bench press biking billiards blow dry hair blowing candles body weight squats
    applyeyemakeup applylipstick babycrawling balancebeam bandmarching baseballpitch
    basketballdunk benchpress blowdryhair blowingcandles bodyweightsquats
"""


def build_tokenizer(words: Iterable[str] = (), **options: Any):
    """A CLIPTokenizer built without training: CLIP's byte-level alphabet (each symbol also in
    its end-of-word form) plus merges that spell each of `WHOLE_WORDS` left to right. Any text
    tokenizes, and the vocabulary is the same on every build; a tokenizer trained here would not
    be (the `tokenizers` trainer breaks ties between equally frequent pairs differently from run
    to run). `words` (lowercase) become whole tokens too; without them the tokenizer is exactly
    the default one. `options` go to CLIPTokenizer (e.g. model_max_length)."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = [*symbols, *(symbol + "</w>" for symbol in symbols)]
    merges: list[tuple[str, str]] = []
    for word in sorted(set(WHOLE_WORDS.split()) | set(words)):
        pieces = [*word[:-1], word[-1] + "</w>"]
        prefix = pieces[0]
        for piece in pieces[1:]:
            merges.append((prefix, piece))
            prefix += piece
            tokens.append(prefix)
    tokens = list(dict.fromkeys([*tokens, "<|startoftext|>", "<|endoftext|>"]))
    return CLIPTokenizer(
        vocab={token: i for i, token in enumerate(tokens)}, merges=list(dict.fromkeys(merges)), **options
    )


def image_processor_for(layout: CheckpointLayout, side: int | None = None, **dimensions: Any) -> Any:
    """The image processor of `layout`'s class with its keys, dimensions shrunk
    (`CheckpointLayout.shrunk`). The PIL backend of the class: without torchvision it is what
    transformers loads anyway, and it saves the base class name, as the checkpoint has it."""
    import transformers

    name = str(layout.image_processor_class)
    processor_class = getattr(transformers, name + "Pil", None) or getattr(transformers, name)
    return processor_class(**layout.shrunk(side, **dimensions))


def save_hub_layout(processor: Any, out_dir: Path) -> None:
    """Write `processor` the way the hub's checkpoints are laid out: the tokenizer's files (its
    tokenizer_config.json naming the processor class) and the image processor's keys, flat, in
    preprocessor_config.json with `processor_class` (transformers 5's `save_pretrained` would
    nest them in processor_config.json instead; both load the same)."""
    name = type(processor).__name__
    tokenizer = processor.tokenizer
    tokenizer._set_processor_class(name)  # what ProcessorMixin.save_pretrained does
    tokenizer.save_pretrained(out_dir)
    settings = json.loads(processor.image_processor.to_json_string())
    settings["processor_class"] = name
    text = json.dumps(settings, indent=2, sort_keys=True) + "\n"
    (Path(out_dir) / "preprocessor_config.json").write_text(text, encoding="utf-8")


def seeded_init(seed: int, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """`build()` (in eval mode) with the global RNG seeded, since transformers initialises
    weights from it; the RNG is put back afterwards: the library never leaves global seeds set."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        return build().eval()
    finally:
        torch.random.set_rng_state(state)


def build_random_clip(
    out_dir: str | Path,
    architecture: str = "tiny",
    *,
    seed: int = 0,
    logit_scale: float | None = None,
) -> Path:
    """Write a random CLIPModel + processor to `out_dir`, laid out as HUB_LAYOUT's checkpoint
    (its processor classes and preprocessing keys, at this architecture's input size); returns it.

    `logit_scale` sets exp(logit_scale) (CLIP's released weights have 100); None keeps the
    initial value 1/0.07.
    """
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}; got {architecture!r}")
    shape = ARCHITECTURES[architecture]
    layout = layout_for(HUB_LAYOUT)
    tokenizer = build_tokenizer(**layout.tokenizer)
    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vocab_size = 49408 if architecture == "vit-b-32" else len(tokenizer)
    config = CLIPConfig(
        text_config={**shape["text_config"], **special, "vocab_size": vocab_size},
        vision_config=shape["vision_config"],
        projection_dim=shape["projection_dim"],
    )
    model = seeded_init(seed, lambda: CLIPModel(config))
    if logit_scale is not None:
        with torch.no_grad():
            model.logit_scale.fill_(float(torch.log(torch.tensor(logit_scale))))
    image_processor = image_processor_for(layout, shape["vision_config"]["image_size"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    save_hub_layout(CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer), out_dir)
    return out_dir
