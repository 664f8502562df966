"""Media index: incremental scan + embed into SQLite, two-stage search per query branch
(`mumur.Index`)."""

from __future__ import annotations

from .builder import IndexReport, build_index
from .embedder import Embedder, FrameStates, ModelEmbedder
from .loading import clip_retrieval_model, load_embedder
from .layout import IndexLayout
from .schema import SCHEMA_VERSION
from .search import Index, SearchResponse, SearchResult
from .store import IndexStore

__all__ = [
    "SCHEMA_VERSION",
    "Embedder",
    "FrameStates",
    "Index",
    "IndexLayout",
    "IndexReport",
    "IndexStore",
    "ModelEmbedder",
    "SearchResponse",
    "SearchResult",
    "build_index",
    "clip_retrieval_model",
    "load_embedder",
]
