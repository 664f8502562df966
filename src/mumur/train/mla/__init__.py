"""MLA, multilingual acquisition (Zhang et al., MLMM/M-CLIP/MLA survey §3.2.2, eq. 6-8):
per-language acquirers in a frozen CLIP text tower (`mumur.encoders.text.mla`), trained in two
stages with one language per mini-batch (`mumur mla train RECIPE --out DIR`):

1. native language transfer: Psi'(T) regresses the frozen Psi(S) of the English source of each
   translation pair (eq. 6), pairs derived from the pretraining world's scenes
   (`mumur.data.synthetic.parallel`), teacher targets cached as M-CLIP distillation caches them;
2. language exposure: symmetric NCE between Psi'(T) and the frozen vision tower's Phi(V) of the
   item the caption describes (eq. 7-8), on a rendered exposure world.

`add_language` trains one more language's acquirers on a trained encoder and reports what that
costs (parameters, seconds). Modules: `recipe`, `data` (batches), `model` (losses, the trained
module, embedding init), `run`.
"""

from __future__ import annotations

from .data import ExposureBatches, NltBatches, exposure_pairs, language_of_step
from .model import LanguageExposureLoss, MlaStageModule, init_multilingual_embedding
from .recipe import MlaRecipe, load_mla_recipe
from .run import add_language, mla_parameter_counts, train_mla, validate_mla

__all__ = ["ExposureBatches", "LanguageExposureLoss", "MlaRecipe", "MlaStageModule",
           "NltBatches", "add_language", "exposure_pairs", "init_multilingual_embedding",
           "language_of_step", "load_mla_recipe", "mla_parameter_counts", "train_mla",
           "validate_mla"]
