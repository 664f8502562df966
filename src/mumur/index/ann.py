"""Approximate first stage with FAISS, chosen per index as an index-factory string.

An index may record an `AnnSpec` (meta key ``ann``; `mumur index --ann FACTORY --ann-params P`):
the FAISS index-factory string that builds stage 1 over the pooled vectors (inner product), e.g.
``HNSW32,Flat`` (graph, no training) or ``IVF4096,PQ64x4fs,RFlat`` (inverted lists, fast-scan
4-bit PQ codes, exact re-ranking of ``k_factor_rf`` x k codes' candidates on the stored vectors),
and the search-time parameters as FAISS's `ParameterSpace` string (``efSearch=128``,
``nprobe=32,k_factor_rf=8``). Stage 2 then scores the shortlist exactly, so the ANN's misses are
the only loss (benchmarks/ann_recall.py measures recall@10 against exact search).

Without a spec the engine keeps its exact stage 1 (float16 flat scan from 4096 items on).
The FAISS index is built when the index is loaded (training on a sample of at most
`train_max` vectors); a warm process (the server, `mumur.Index` reused) builds it once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ConfigError

__all__ = ["ANN_META_KEY", "AnnSpec", "build_ann"]

ANN_META_KEY = "ann"


@dataclass(frozen=True)
class AnnSpec:
    """How stage 1 is built and searched.

    Attributes:
        factory: FAISS index-factory string (`faiss.index_factory`), inner-product metric.
        params: FAISS `ParameterSpace` string applied after building ("" for none).
        min_items: below this many items of a media type, stage 1 stays exact.
        train_max: vectors sampled to train an index that needs training (IVF, PQ).
    """

    factory: str
    params: str = ""
    min_items: int = 0
    train_max: int = 100_000

    def __post_init__(self):
        if not self.factory or not isinstance(self.factory, str):
            raise ConfigError("an ANN spec needs a FAISS index-factory string")

    def to_json(self) -> str:
        """Compact JSON (stored in the index's meta table)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> AnnSpec | None:
        """Inverse of `to_json`; None for a missing or empty value."""
        if not text:
            return None
        return cls(**json.loads(text))

    def check(self, dim: int = 8) -> None:
        """Raise `ConfigError` if FAISS cannot build this factory string or apply the params."""
        try:
            build_ann(np.random.default_rng(0).standard_normal((max(64, _min_train(self)),
                                                                dim)).astype(np.float32), self)
        except ConfigError:
            raise
        except Exception as exc:  # faiss raises RuntimeError with its own message
            raise ConfigError(f"ANN spec {self.factory!r} / {self.params!r}: {exc}") from exc


def _min_train(spec: AnnSpec) -> int:
    """Enough random vectors to train a small version of the spec in `check`."""
    return 4096 if ("IVF" in spec.factory or "PQ" in spec.factory) else 64


def build_ann(vectors: np.ndarray, spec: AnnSpec, seed: int = 0):
    """A trained and filled FAISS index over `vectors` (n, d) float32, inner-product metric.

    Raises:
        ConfigError: an invalid factory string or parameter.
    """
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    try:
        index = faiss.index_factory(d, spec.factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ConfigError(f"FAISS cannot build {spec.factory!r}: {exc}") from exc
    if not index.is_trained:
        rng = np.random.default_rng(seed)
        sample = vectors if n <= spec.train_max else vectors[
            np.sort(rng.choice(n, spec.train_max, replace=False))]
        index.train(sample)
    index.add(vectors)
    if spec.params:
        try:
            faiss.ParameterSpace().set_index_parameters(index, spec.params)
        except RuntimeError as exc:
            raise ConfigError(f"FAISS parameters {spec.params!r}: {exc}") from exc
    return index
