"""What the `Trainer` trains: the student against cached teacher targets, with the distillation
loss of M-CLIP (eq. 5)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ...losses import LossOutput

__all__ = ["DistillLoss", "DistillModule"]


class DistillLoss(nn.Module):
    """Multilingual knowledge distillation loss, eq. (5): mean squared error between the
    student's embedding of the target sentence and the frozen teacher's embedding of its English
    source, averaged over the batch and the embedding dimensions (`nn.MSELoss`, M-CLIP)."""

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Args: student (B, D), teacher (B, D). Returns: scalar loss."""
        if student.shape != teacher.shape:
            raise ValueError(f"student {tuple(student.shape)} and teacher "
                             f"{tuple(teacher.shape)} embeddings differ in shape")
        return ((student.float() - teacher.float()) ** 2).mean()  # eq. (5)


class DistillModule(nn.Module):
    """What the `Trainer` trains: the student and the loss against cached teacher targets.

    `compute_loss(batch)` takes `target` (list of B target-language sentences) or
    `student_features` (B, Db) cached frozen-base outputs (adapter student), `teacher` (B, D) the
    teacher's embeddings of the English sources, and `is_english` (B,) bool. `save` writes the
    student's encoder folder, so the trainer's `best/` and `model/` load with `load_encoder`.
    """

    def __init__(self, student: nn.Module):
        super().__init__()
        self.student = student
        self.loss = DistillLoss()

    def compute_loss(self, batch: dict) -> LossOutput:
        """Returns: `LossOutput(loss=eq. 5 on the batch, terms={"en": English rows, "ml": the
        rest})` (the terms are logged, the total is optimised)."""
        if "student_features" in batch:
            pred = self.student.project(batch["student_features"])  # (B, D)
        else:
            pred = self.student(batch["target"])  # (B, D)
        teacher = batch["teacher"]  # (B, D)
        loss = self.loss(pred, teacher)
        english = batch["is_english"].bool()
        terms = {}
        with torch.no_grad():  # per-language terms are logged, the total above is optimised
            for name, rows in (("en", english), ("ml", ~english)):
                if rows.any():
                    terms[name] = self.loss(pred[rows], teacher[rows])
        return LossOutput(loss, terms)

    def save(self, path) -> Path:
        return self.student.save(path)

