"""Sound in the index: CLIP4VLA audio embeddings stored beside the visual arrays, and the audio
term added to text search (`mumur.model.audio`: s = visual score + w cos(M x, z^g)).

Storage (an additive extension of schema version 3; an index without it is a visual-only index):

* ``meta``: ``audio_source`` (the `AudioTower` folder), ``audio_identity`` (`AudioTower.identity`);
* table ``audio(item_id PRIMARY KEY, outcome, source, vector BLOB)``: per video its sound outcome
  (`mumur.data.audio_features.AUDIO_OUTCOMES`), where its vector came from (0 own track,
  1 borrowed from the visually nearest training video, 2 none: no audio term) and the unit audio
  vector z^g (float32, all zeros for source 2). Written in the same transaction as the item.

Rules: an index built with an audio tower keeps using it (later `mumur index` runs embed the
sound of new videos, `mumur search` and the API add the audio term); another tower, or an audio
tower for an index that already holds videos without sound rows, is refused with one line, as any
model mismatch. Audio never fails an item: a file whose sound cannot be read gets its outcome and
the missing-audio policy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.audio_features import audio_outcome
from ..errors import IndexMismatchError
from ..model.audio import AudioTower

__all__ = ["AUDIO_SHORTLIST", "AUDIO_TABLE", "AudioRow", "AudioScorer", "bind_audio", "embed_audio",
           "index_audio_tower"]

AUDIO_TABLE = """CREATE TABLE IF NOT EXISTS audio (
    item_id INTEGER PRIMARY KEY, outcome TEXT NOT NULL, source INTEGER NOT NULL,
    vector BLOB NOT NULL)"""
#: Candidates (visual shortlist) the audio term re-scores when the index is large.
AUDIO_SHORTLIST = 256


@dataclass(frozen=True)
class AudioRow:
    """One video's sound in the index (module docstring)."""

    outcome: str
    source: int
    vector: np.ndarray


def bind_audio(store, tower: AudioTower | None, source: str | None) -> AudioTower | None:
    """Record `tower` on an index (fresh, or one that has it already) and return the tower the
    run uses: the given one, else the one the index records, else None (visual only).

    Raises:
        IndexMismatchError: the index records another tower, or holds videos embedded without
            sound rows.
    """
    meta = store.meta()
    recorded = meta.get("audio_identity")
    if tower is None:
        return AudioTower.load(meta["audio_source"]) if recorded else None
    if recorded and recorded != tower.identity:
        raise IndexMismatchError(
            f"index {store.root} was built with audio tower {meta.get('audio_source')!r}; the "
            f"given tower {source!r} differs (identity {tower.identity}): use the recorded one, "
            "or build a new index in another folder")
    if not recorded:
        if store.counts().get("videos", 0):
            raise IndexMismatchError(
                f"index {store.root} was built without audio; an audio tower needs an "
                "audio-aware index: build a new one in another folder with --audio")
        store.execute_write(AUDIO_TABLE)
        store.set_meta("audio_source", str(Path(source).resolve()) if source else "")
        store.set_meta("audio_identity", tower.identity)
    return tower


def _global_visual(features: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """y^g: the normalised mean of the normalised frame features, ``(B, D)``."""
    frames = torch.nn.functional.normalize(torch.as_tensor(features, dtype=torch.float32), dim=-1)
    weights = torch.as_tensor(mask, dtype=torch.float32).unsqueeze(-1)
    pooled = (frames * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def embed_audio(tower: AudioTower, paths: list[str], media_types: list[str],
                features: np.ndarray, mask: np.ndarray) -> list[AudioRow | None]:
    """Sound rows of one embedded batch (None for images); never raises for a bad track."""
    rows: list[AudioRow | None] = [None] * len(paths)
    videos = [i for i, t in enumerate(media_types) if t == "video"]
    if not videos:
        return rows
    decoded = [audio_outcome(Path(paths[i]), tower.encoder.settings) for i in videos]
    outcomes = [o for _, o, _ in decoded]
    audio = tower.encoder.encode(tower.encoder.chunks([m for m, _, _ in decoded])).numpy()
    if features.shape[-1] != tower.bank_vision.shape[1]:
        raise IndexMismatchError(
            f"the audio tower borrows by {tower.bank_vision.shape[1]}-d visual features; this "
            f"model's frames are {features.shape[-1]}-d (index with the tower's vision model)")
    vectors, sources = tower.video_audio(_global_visual(features[videos], mask[videos]), audio,
                                         outcomes)
    for j, i in enumerate(videos):
        rows[i] = AudioRow(outcomes[j], int(sources[j]), vectors[j].astype(np.float32))
    return rows


class AudioScorer:
    """The audio term of text search over an index's stored sound rows.

    Args:
        tower: the index's audio tower.
        text_encoders: branch -> the frozen text tower its queries go through (the tower was
            trained against these spaces).
    """

    def __init__(self, tower: AudioTower, text_encoders: dict):
        self.tower = tower
        self.text_encoders = text_encoders
        self._generation: int | None = None
        self._rows: dict[int, np.ndarray] = {}

    def load(self, store) -> None:
        """(Re)read the sound rows when the index generation changed."""
        generation = store.generation()
        if generation != self._generation:
            self._rows = {int(i): np.frombuffer(v, dtype="<f4") for i, v in
                          store.query("SELECT item_id, vector FROM audio")}
            self._generation = generation

    @torch.no_grad()
    def query(self, text: str, branch: str) -> np.ndarray:
        """``M x`` (unit) for one query through the branch's text tower."""
        encoder = self.text_encoders.get(branch) or next(iter(self.text_encoders.values()))
        mapped = self.tower.audio_queries(encoder.encode([text]))
        return torch.nn.functional.normalize(mapped, dim=-1)[0].numpy()

    def scores(self, text: str, branch: str, ids: list[int]) -> np.ndarray:
        """``w cos(M x, z^g)`` per item id (0 for items without a sound row: images)."""
        q = self.query(text, branch)
        zero = np.zeros_like(q)
        return np.array([self.tower.weight * float(self._rows.get(i, zero) @ q) for i in ids],
                        dtype=np.float32)


def index_audio_tower(store, audio: str | os.PathLike | None) -> AudioTower | None:
    """The audio tower a search on `store` uses: the recorded one; `audio` (a tower folder given
    by the caller) must be it.

    Raises:
        IndexMismatchError: `audio` given for an index built without audio, or another tower.
    """
    meta = store.meta()
    recorded = meta.get("audio_identity")
    if audio is not None:
        tower = AudioTower.load(audio)
        if not recorded:
            raise IndexMismatchError(
                f"index {store.root} was built without audio; searching it with an audio model "
                "is refused: build an audio-aware index (mumur index ... --audio TOWER)")
        if tower.identity != recorded:
            raise IndexMismatchError(
                f"index {store.root} was built with audio tower {meta.get('audio_source')!r}; "
                f"the given tower {os.fspath(audio)!r} differs")
        return tower
    return AudioTower.load(meta["audio_source"]) if recorded else None
