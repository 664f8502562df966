"""The pretrainer: a `transformers.CLIPModel` with the CLIP loss and the auxiliary geometry and
grid-cell heads (discarded at export)."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from ...data.synthetic.frames import CELL_FIELDS, GEOMETRY_FIELDS
from ...losses import LossOutput, weighted_loss
from .export import save_clip_folder
from .recipe import ObjectiveSpec, PretrainRecipe

__all__ = ["WorldClipPretrainer", "build_pretrainer"]

# Rough standardisation of the geometry targets (present, x, y, radius, cos, sin).
_GEOMETRY_MEAN = torch.tensor([0.6, 0.5, 0.5, 0.13, 0.0, 0.0])
_GEOMETRY_STD = torch.tensor([0.5, 0.25, 0.25, 0.05, 0.7, 0.7])


class WorldClipPretrainer(nn.Module):
    """A `transformers.CLIPModel` with the pretraining loss (and the auxiliary geometry head).

    Args:
        clip: the model.
        tokenizer: its tokenizer (saved with it).
        objective: loss settings.
    """

    def __init__(self, clip: nn.Module, tokenizer, objective: ObjectiveSpec):
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self.objective = objective
        dim = clip.config.projection_dim
        self.geometry = (nn.Linear(dim, objective.geometry_slots * len(GEOMETRY_FIELDS))
                         if objective.geometry_weight > 0 else None)
        self.cells = (nn.Linear(dim, 9 * sum(CELL_FIELDS.values()))
                      if objective.cells_weight > 0 else None)

    def image_embeds(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(n, 3, S, S)` -> `(n, d)` un-normalised (= `CLIPModel.get_image_features`)."""
        pooled = self.clip.vision_model(pixel_values=pixel_values).pooler_output  # (n, Hv)
        return self.clip.visual_projection(pooled)  # (n, d)

    def text_embeds(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """`(n, L)` tokens -> `(n, d)` un-normalised (= `CLIPModel.get_text_features`)."""
        pooled = self.clip.text_model(input_ids=input_ids,
                                      attention_mask=attention_mask).pooler_output  # (n, Ht)
        return self.clip.text_projection(pooled)  # (n, d)

    def compute_loss(self, batch: dict) -> LossOutput:
        """CLIP loss (+ geometry, + cells). `loss_en` holds the contrastive term alone."""
        image = F.normalize(self.image_embeds(batch["pixel_values"]), dim=-1)  # (B, d)
        text = F.normalize(self.text_embeds(batch["input_ids"], batch["attention_mask"]),
                           dim=-1)  # (B, d)
        # CLIP clips the temperature at 100; clamping in the forward has the same effect.
        scale = self.clip.logit_scale.clamp(max=math.log(self.objective.max_logit_scale)).exp()
        logits = scale * image @ text.T  # (B, B) image i vs text j
        logits = logits.masked_fill(batch["negative_mask"], float("-inf"))
        labels = torch.arange(len(logits), device=logits.device)
        # Symmetric InfoNCE (CLIP, Fig. 3): mean of the image->text and text->image CE.
        contrastive = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        terms = {"en": contrastive}  # named terms, logged as loss_<name>
        weights = {}
        if self.geometry is not None:
            terms["geometry"] = self.geometry_loss(image, batch["geometry"])
            weights["geometry"] = self.objective.geometry_weight
        if self.cells is not None:
            terms["cells"] = self.cells_loss(image, batch["cells"])
            weights["cells"] = self.objective.cells_weight
        return weighted_loss(terms, weights)

    def cells_loss(self, image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of what each grid cell shows (shape, colour, size; 0 = empty),
        read linearly off the normalised image embedding. image `(B, d)`, target `(B, 9, 3)`.

        Why: the motion heads downstream read where things are from frozen per-frame features,
        and zero-shot retrieval needs the shape; real CLIP gets both from web-scale data, our
        4000 steps of 128 pairs do not (probes: shape 30 %, grid column at chance)."""
        # The embedding has unit norm: scaled by sqrt(d) its components have about unit
        # variance, so the linear head reaches confident logits without weights that weight
        # decay would hold back (unscaled, it stayed at "every cell empty").
        logits = self.cells(image * math.sqrt(image.shape[-1])).view(len(image), 9, -1)
        parts = torch.split(logits, list(CELL_FIELDS.values()), dim=-1)
        losses = [F.cross_entropy(p.reshape(-1, p.shape[-1]), target[..., k].reshape(-1))
                  for k, p in enumerate(parts)]
        return torch.stack(losses).mean()

    def geometry_loss(self, image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Masked MSE of standardised geometry: the present flag for every slot, the rest for
        slots holding an object. image `(B, d)` normalised, target `(B, slots, 6)`."""
        b, slots, fields = target.shape
        pred = self.geometry(image).view(b, slots, fields)  # (B, slots, 6)
        mean, std = _GEOMETRY_MEAN.to(target), _GEOMETRY_STD.to(target)
        err = ((pred - (target - mean) / std) ** 2)  # (B, slots, 6)
        present = target[..., :1]  # (B, slots, 1)
        weight = torch.cat([torch.ones_like(present), present.expand(-1, -1, fields - 1)], -1)
        return (err * weight).sum() / weight.sum()

    def save(self, path) -> Path:
        """Write the CLIP folder (the geometry head is not part of it)."""
        return save_clip_folder(self.clip, self.tokenizer, path)


def build_pretrainer(recipe: PretrainRecipe) -> WorldClipPretrainer:
    """A freshly initialised model for `recipe` (seeded by `recipe.train.seed`)."""
    from transformers import CLIPModel

    from ...encoders.text import build_clip_tokenizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.train.seed)
        clip = CLIPModel(recipe.model.clip_config())
        model = WorldClipPretrainer(clip, build_clip_tokenizer(), recipe.objective)
    return model

