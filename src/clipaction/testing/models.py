"""One entry point for a random model of any family: `build_random_model(out_dir, variant, shape)`.

Each folder is laid out as the hub checkpoint it stands for (`clipaction.models.checkpoint_layouts`),
so the code that loads it is the code that loads the real one. The three builders behind it
(`tiny_clip`, `tiny_families`, `tiny_video`) hold each family's configs and tokenizers.
"""

from __future__ import annotations

from pathlib import Path

#: variant -> the registered family (config.json's model_type) its folder loads as.
VARIANT_FAMILY = {
    "clip": "clip",
    "metaclip_2": "metaclip_2",
    "siglip": "siglip",
    "siglip2-fixed": "siglip",
    "siglip2-naflex": "siglip2",
    "xclip": "xclip",
    "videoprism": "videoprism",
}
#: A registered family name -> the variant built for it (the siglip2 family is SigLIP 2 NaFlex).
FAMILY_VARIANT = {"siglip2": "siglip2-naflex"}
#: shape -> the name each builder gives it: "tiny" (a few thousand parameters, for tests) or
#: "base" (a real ViT-B image tower, for speed measurements).
_SHAPE_NAMES = {
    "tiny": {},
    "base": {"clip": "vit-b-32", "xclip": "base-patch32"},
}


def build_random_model(
    out_dir: str | Path, variant: str, *, shape: str = "tiny", seed: int = 0, logit_scale: float | None = None
) -> Path:
    """Write a random model of `variant` (a key of VARIANT_FAMILY, or a family name) and its
    processor files to `out_dir`; returns it. Deterministic for a given seed. `logit_scale`
    (CLIP only) sets exp(logit_scale), as CLIP's released 100; None keeps the initial 1/0.07."""
    variant = FAMILY_VARIANT.get(variant, variant)
    if variant not in VARIANT_FAMILY:
        raise ValueError(f"variant must be one of {', '.join(VARIANT_FAMILY)}; got {variant!r}")
    if shape not in _SHAPE_NAMES:
        raise ValueError(f"shape must be one of {', '.join(_SHAPE_NAMES)}; got {shape!r}")
    if logit_scale is not None and variant != "clip":
        raise ValueError("logit_scale is set for CLIP only")
    named = _SHAPE_NAMES[shape].get(variant, shape)
    if variant == "clip":
        from clipaction.testing.tiny_clip import build_random_clip

        return build_random_clip(out_dir, named, seed=seed, logit_scale=logit_scale)
    if variant in ("xclip", "videoprism"):
        from clipaction.testing.tiny_video import build_random_video_model

        return build_random_video_model(out_dir, variant, seed=seed, shape=named)
    from clipaction.testing import tiny_families

    return tiny_families.build_random_model(out_dir, variant, seed=seed, shape=named)
