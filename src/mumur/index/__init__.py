"""Media index: incremental scan + embed into SQLite, two-stage search (`mumur.Index`)."""

from __future__ import annotations

from .builder import IndexReport, build_index
from .embedder import ClipEmbedder, Embedder, FrameStates, ModelEmbedder, load_embedder
from .search import Index, SearchResponse, SearchResult
from .schema import SCHEMA_VERSION
from .store import IndexStore

__all__ = [
    "SCHEMA_VERSION",
    "ClipEmbedder",
    "Embedder",
    "FrameStates",
    "Index",
    "IndexReport",
    "IndexStore",
    "ModelEmbedder",
    "SearchResponse",
    "SearchResult",
    "build_index",
    "load_embedder",
]
