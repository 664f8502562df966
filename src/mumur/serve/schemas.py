"""Request/response models of the HTTP API (pydantic; they also make `/openapi.json`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["ErrorReply", "HealthReply", "SearchHit", "SearchReply"]


class SearchHit(BaseModel):
    """One result. `timestamp`: best-matching second for videos, null for images."""

    id: int = Field(description="Item id; use with /api/media/{id} and /api/thumb/{id}.")
    path: str
    score: float = Field(description="Model score (cosine), higher is better.")
    media_type: Literal["image", "video"]
    timestamp: float | None
    calibrated: float = Field(description="z-score vs the query's non-matching items.")
    relevant: bool = Field(description="The reply's `flag_statistic` (z or score) >= its "
                           "`threshold`.")
    probability: float | None = Field(
        None, ge=0, le=1, description="The model's own probability that the query matches "
        "(sigmoid-trained checkpoints such as SigLIP / SigLIP 2: sigmoid(score * "
        "exp(logit_scale) + logit_bias) with the checkpoint's scalars); null for other models.")
    rerank_score: float | None = Field(
        None, description="Cross-encoder (MLMM ITM) score when the hit was in the re-ranked "
        "shortlist; `score`, `calibrated` and `relevant` stay the two-stream figures.")
    audio_score: float | None = Field(
        None, description="Audio-aware index (CLIP4VLA): the audio term w cos(M x, z) included "
        "in `score`; null for a visual-only index.")
    sound_match: bool = Field(
        False, description="The audio term lifted the hit above where its picture alone ranked "
        "it (matched on sound).")


class SearchReply(BaseModel):
    """`GET /api/search` body."""

    results: list[SearchHit]
    query: str
    took_ms: float
    mode: Literal["two-stage", "exact", "image", "two-stage+rerank", "exact+rerank"]
    relevant: bool = Field(description="False means 'no relevant results'.")
    threshold: float | None = Field(description="What a hit's `flag_statistic` must reach to be "
                                   "relevant; null when the model's calibration found no "
                                   "reliable threshold (nothing is flagged).")
    flag_rule: Literal["bonferroni", "calibrated", "unsupported"] = Field(
        "bonferroni", description="bonferroni: uncalibrated z rule (chance level over the "
        "candidates); calibrated: the model's relevance.json (`mumur calibrate`); unsupported: "
        "that calibration found no threshold meeting its targets.")
    flag_statistic: Literal["z", "score"] | None = Field(
        "z", description="The statistic `threshold` applies to.")
    branch: Literal["en", "ml"] = Field(
        description="Text branch the query went through: English queries through the English "
        "branch, other or undetermined languages through the multilingual one (as evaluation).")
    language: str | None = Field(
        description="The query language as given (`lang`) or confidently detected; null when "
        "unknown.")
    language_detected: bool = Field(description="Whether `language` was detected.")
    rerank_k: int = Field(0, description="Shortlist the server's re-ranker reordered (0: none).")
    rerank_ms: float | None = Field(None, description="Re-ranking's share of `took_ms`.")


class HealthReply(BaseModel):
    """`GET /api/health` body."""

    status: Literal["ok"]
    items: int
    images: int
    videos: int
    model: str | None
    schema_version: int


class ErrorReply(BaseModel):
    """Every 4xx/5xx body."""

    error: str
