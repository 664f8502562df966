"""mumur: multilingual multimodal retrieval.

Public API (imported lazily so `import mumur` stays fast):
    load_encoder, load_model, create_model, list_models, metrics, data, Index
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

__all__ = [
    "load_encoder",
    "load_model",
    "create_model",
    "list_models",
    "metrics",
    "data",
    "Index",
    "__version__",
]

_LAZY = {
    "load_encoder": ("mumur.encoders", "load_encoder"),
    "load_model": ("mumur.model", "load_model"),
    "create_model": ("mumur.model", "create_model"),
    "list_models": ("mumur.model", "list_models"),
    "metrics": ("mumur.eval.metrics", None),
    "data": ("mumur.data", None),
    "Index": ("mumur.index", "Index"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'mumur' has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value
