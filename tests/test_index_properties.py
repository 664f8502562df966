"""Index add / modify / remove sequences against a model dict (hypothesis stateful test).

The model is `{file name: colour}`. After every successful index run the index holds exactly the
model (each item's colour read back from its stored pooled vector, ids of modified files kept);
after a run that crashes between batches it holds, per file, either the new or the previous
state and nothing else, and the next run restores equality.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from conftest import PALETTE, PaletteEmbedder, write_palette_image  # noqa: E402
from hypothesis import settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import (  # noqa: E402
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
)

from mumur.index import IndexStore, build_index  # noqa: E402

COLOURS = ["red", "green", "blue", "yellow"]


class _Crash(RuntimeError):
    pass


class CrashingEmbedder(PaletteEmbedder):
    """Raises on its `crash_at`-th batch (the batches before it are committed)."""

    def __init__(self, crash_at: int):
        super().__init__()
        self.crash_at, self.calls = crash_at, 0

    def encode_frames(self, pixel_values):
        self.calls += 1
        if self.calls >= self.crash_at:
            raise _Crash(f"simulated crash in batch {self.calls}")
        return super().encode_frames(pixel_values)


class IndexMachine(RuleBasedStateMachine):
    names = Bundle("names")

    def __init__(self):
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="mumur-prop-"))
        self.corpus, self.index = self.tmp / "corpus", self.tmp / "index"
        self.corpus.mkdir()
        self.files: dict[str, str] = {}  # on disk now
        self.ids: dict[str, int] = {}
        self.counter, self.clock = 0, 1_600_000_000 * 10**9

    def _write(self, name: str, colour: str) -> None:
        path = self.corpus / name
        write_palette_image(path, colour, seed=self.counter)
        self.counter += 1
        self.clock += 10**9  # a real edit moves the mtime; same-tick edits are out of scope
        os.utime(path, ns=(self.clock, self.clock))
        self.files[name] = colour

    def _stored(self) -> dict[str, tuple[int, str]]:
        if not (self.index / "index.sqlite").exists():
            return {}
        store = IndexStore(self.index)
        try:
            arrays = store.load_arrays()
            assert store.integrity_check() == "ok"
        finally:
            store.close()
        names = list(PALETTE)
        return {os.path.basename(p): (int(i), names[int(np.argmax(v))])
                for i, p, v in zip(arrays.ids, arrays.paths, arrays.pooled)}

    @rule(target=names, colour=st.sampled_from(COLOURS))
    def add(self, colour):
        name = f"img_{self.counter:04d}.png"
        self._write(name, colour)
        return name

    @rule(name=names, colour=st.sampled_from(COLOURS))
    def modify(self, name, colour):
        if name in self.files:
            self._write(name, colour)

    @rule(name=consumes(names))
    def remove(self, name):
        if self.files.pop(name, None) is not None:
            os.unlink(self.corpus / name)

    @rule()
    def index_run(self):
        build_index([self.corpus], self.index, embedder=PaletteEmbedder(), batch_size=2,
                    num_workers=0, progress=False)
        stored = self._stored()
        assert {n: c for n, (_, c) in stored.items()} == self.files
        for name, (item_id, _) in stored.items():  # a file keeps its id while it exists
            assert self.ids.setdefault(name, item_id) == item_id
        self.ids = {n: self.ids[n] for n in stored}

    @rule(crash_at=st.integers(1, 3))
    def crashed_index_run(self, crash_at):
        before = {n: c for n, (_, c) in self._stored().items()}
        try:
            build_index([self.corpus], self.index, embedder=CrashingEmbedder(crash_at),
                        batch_size=2, num_workers=0, progress=False)
        except _Crash:
            pass
        for name, (_, colour) in self._stored().items():  # old or new state, per file
            assert colour in (self.files.get(name), before.get(name)), name

    @invariant()
    def no_duplicates(self):
        stored = self._stored()
        assert len({i for i, _ in stored.values()}) == len(stored)

    def teardown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


IndexMachine.TestCase.settings = settings(max_examples=8, stateful_step_count=10, deadline=None)
test_index_matches_a_model_dict = IndexMachine.TestCase
