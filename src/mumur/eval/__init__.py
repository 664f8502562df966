"""Evaluation: metrics (pure functions), the runner, and reports."""

from . import metrics
from .metrics import sum_r, t2v_metrics, v2t_metrics

__all__ = ["metrics", "sum_r", "t2v_metrics", "v2t_metrics"]
