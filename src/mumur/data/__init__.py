"""Datasets: the shared `RetrievalDataset` shape, benchmark adapters and the synthetic world."""

from __future__ import annotations

import importlib
import pkgutil

from ..registry import Registry
from .dataset import Caption, RetrievalDataset

__all__ = ["RetrievalDataset", "Caption", "BENCHMARKS", "load_benchmark", "list_benchmarks"]

BENCHMARKS = Registry("benchmark")
_loaded = False


def _import_adapters() -> None:
    # Adapters register themselves on import; one module per benchmark.
    global _loaded
    if _loaded:
        return
    from . import benchmarks

    for mod in pkgutil.iter_modules(benchmarks.__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{benchmarks.__name__}.{mod.name}")
    importlib.import_module(f"{__name__}.synthetic.dataset")
    _loaded = True


def load_benchmark(name: str, root, split: str = "test", **options) -> RetrievalDataset:
    """Load benchmark `name` from `root` (annotation files under their original names).

    Args:
        name: one of `list_benchmarks()`.
        root: folder with the annotation files (and, by default, the media).
        split: `train`, `val` or `test`.
        **options: adapter options (e.g. `media_root`, `media_pattern`, `languages`).
    """
    _import_adapters()
    return BENCHMARKS.get(name)(root, split=split, **options)


def list_benchmarks() -> list[str]:
    _import_adapters()
    return BENCHMARKS.names()
