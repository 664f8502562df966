"""What an index stores per item, and which stored arrays each query branch reads.

An index serves every query branch its model was trained with (MuMUR §3.2.5: English queries
through the English branch, the others through the multilingual one). Each branch b needs its
per-frame arrays (`head.index_state(ctx, mask, b)`) and its stage-1 vector
(`head.pooled(ctx, mask, b)`). Arrays that do not depend on the branch are stored once: an array
is named ``key`` when every branch shares it and ``<branch>/key`` when it is the branch's own
(for `mumur-dcm`: ``keys`` shared, ``en/values_0`` and ``ml/values_0`` per branch; for `meanP`:
one ``frames`` array and one ``pooled`` vector). The per-frame arrays are concatenated along the
last axis of the item's `state` BLOB, the stage-1 vectors in its `pooled` BLOB, in `state` /
`pooled` order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..heads.base import BRANCHES

__all__ = ["POOLED_KEY", "IndexLayout"]

POOLED_KEY = "pooled"


def _entries(value) -> tuple[tuple[str, int], ...]:
    return tuple((str(name), int(width)) for name, width in value)


@dataclass(frozen=True)
class IndexLayout:
    """Stored arrays and the branches they serve.

    Attributes:
        branches: query branches the index serves, e.g. ("en", "ml").
        state: (name, width) of the per-frame arrays, in BLOB order.
        pooled: (name, width) of the stage-1 vectors (key ``pooled``), in BLOB order.
    """

    branches: tuple[str, ...]
    state: tuple[tuple[str, int], ...]
    pooled: tuple[tuple[str, int], ...]

    def __post_init__(self):
        object.__setattr__(self, "branches", tuple(self.branches))
        object.__setattr__(self, "state", _entries(self.state))
        object.__setattr__(self, "pooled", _entries(self.pooled))
        bad = [b for b in self.branches if b not in BRANCHES]
        if bad or not self.branches or len(set(self.branches)) != len(self.branches):
            raise ValueError(f"layout branches {self.branches!r}: use distinct names from "
                             f"{BRANCHES}")
        for kind in ("state", "pooled"):
            names = [name for name, _ in getattr(self, kind)]
            if len(set(names)) != len(names):
                raise ValueError(f"layout {kind} names repeat: {names}")
            keys = [set(self._columns(kind, b)) for b in self.branches]
            if any(k != keys[0] for k in keys) or not keys[0]:
                raise ValueError(f"layout {kind} {names}: every branch needs the same arrays")
        for branch in self.branches:
            if set(self._columns("pooled", branch)) != {POOLED_KEY}:
                raise ValueError(f"layout pooled {self.pooled}: one '{POOLED_KEY}' vector per "
                                 "branch")

    def _columns(self, kind: str, branch: str) -> dict[str, slice]:
        out, start = {}, 0
        for name, width in getattr(self, kind):
            owner, _, key = name.rpartition("/")
            if owner in ("", branch):
                out[key] = slice(start, start + width)
            start += width
        return out

    def state_columns(self, branch: str) -> dict[str, slice]:
        """key -> columns of the state axis that branch `branch` reads."""
        self._check(branch)
        return self._columns("state", branch)

    def pooled_columns(self, branch: str) -> slice:
        """Columns of the pooled axis holding `branch`'s stage-1 vector."""
        self._check(branch)
        return self._columns("pooled", branch)[POOLED_KEY]

    def _check(self, branch: str) -> None:
        if branch not in self.branches:
            raise ValueError(f"the index serves branches {self.branches}, not {branch!r}")

    @property
    def state_dim(self) -> int:
        """Width Ds of the stored per-frame state."""
        return sum(width for _, width in self.state)

    @property
    def pooled_dim(self) -> int:
        """Width of the stored pooled vectors (one d-vector per distinct branch vector)."""
        return sum(width for _, width in self.pooled)

    @staticmethod
    def name(key: str, branch: str, shared: bool) -> str:
        """Stored name of array `key` of `branch` (``key`` when every branch shares it)."""
        return key if shared else f"{branch}/{key}"

    def to_json(self) -> str:
        """Compact JSON (stored in the index's meta table)."""
        return json.dumps({"branches": list(self.branches), "state": [list(e) for e in self.state],
                           "pooled": [list(e) for e in self.pooled]})

    @classmethod
    def from_json(cls, text: str) -> IndexLayout:
        """Inverse of `to_json`."""
        data = json.loads(text)
        return cls(tuple(data["branches"]), data["state"], data["pooled"])
