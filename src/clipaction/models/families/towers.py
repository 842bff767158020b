"""The trainable image towers of the frame families, as torch modules (apart from the families'
modules, so that importing a family, as a fully cached run does, does not import torch)."""

from __future__ import annotations

import torch


class ImageTower(torch.nn.Module):
    """CLIP's vision transformer and its projection as one module: pixels (N, 3, S, S) -> (N, E)
    unnormalised embeddings. What full fine-tuning trains."""

    def __init__(self, vision_model: torch.nn.Module, visual_projection: torch.nn.Linear) -> None:
        super().__init__()
        self.vision_model = vision_model
        self.visual_projection = visual_projection

    def pooled(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) -> (N, D) pre-projection features."""
        return self.vision_model(pixel_values=pixels).pooler_output

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        pooled = self.pooled(pixels)
        return self.visual_projection(pooled.to(self.visual_projection.weight.dtype))


class SiglipImageTower(torch.nn.Module):
    """SigLIP's vision model (with its attention-pooling head) as one module: pixels (N, 3, S, S),
    or packed NaFlex patches (N, P, C + 3), -> (N, E) unnormalised embeddings."""

    def __init__(self, vision_model: torch.nn.Module, naflex: bool) -> None:
        super().__init__()
        self.vision_model = vision_model
        self.naflex = naflex

    def pooled(self, pixels: torch.Tensor) -> torch.Tensor:
        """The embeddings: there is no projection after the head."""
        return self(pixels)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if not self.naflex:
            return self.vision_model(pixel_values=pixels).pooler_output
        from clipaction.models.families.siglip import unpack_naflex

        pixel_values, mask, shapes = unpack_naflex(pixels)
        return self.vision_model(
            pixel_values=pixel_values, pixel_attention_mask=mask, spatial_shapes=shapes
        ).pooler_output
