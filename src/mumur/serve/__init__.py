"""`mumur serve`: HTTP API (FastAPI) + static web UI over an index."""

from __future__ import annotations

from .app import create_app, serve
from .resources import Resources, load_resources

__all__ = ["Resources", "create_app", "load_resources", "serve"]
