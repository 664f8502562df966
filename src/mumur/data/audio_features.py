"""Sound tracks decoded once (PyAV), resampled, turned into normalised log-mel spectrograms and
cached in the feature store, with a per-file outcome.

Every file gets one outcome, never an exception (an indexing or training run goes on):

* ``ok``: an audio stream with sound;
* ``silent``: an audio stream whose samples never exceed ``SILENCE_PEAK`` (digital silence);
* ``no-audio``: no audio stream (or an image);
* ``decode-error``: the file or its audio stream could not be read (corrupt, unknown codec,
  unreadable file); the reason is kept.

Odd sample rates, stereo and planar formats are resampled to mono ``sample_rate`` by
`mumur.media.read_audio`. The store (`FeatureStore`, keyed by the path string) holds ``logmel
(n_mels, T)`` float16 (zero past the clip's end), ``frames`` (valid columns) and ``status`` (an index
into `AUDIO_OUTCOMES`); its tag carries the spectrogram settings, so another setting gets its own
folder under the same root.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..encoders.clip4vla import AUDIO_DEFAULTS, normalised_log_mel
from ..errors import MediaDecodeError
from .feature_store import FeatureStore, store_folder

__all__ = ["AUDIO_OUTCOMES", "SILENCE_PEAK", "AudioRows", "audio_outcome", "audio_tag",
           "cached_audio_rows"]

AUDIO_OUTCOMES = ("ok", "silent", "no-audio", "decode-error")
#: Peak absolute sample value below which a decoded track counts as silent.
SILENCE_PEAK = 1e-4
_SPECTROGRAM_KEYS = ("sample_rate", "n_mels", "n_fft", "hop_length", "chunk_frames", "max_chunks")


def audio_tag(settings: dict | None = None) -> dict:
    """Feature-store tag of log-mel rows made with `settings` (`AUDIO_DEFAULTS` overrides)."""
    s = {**AUDIO_DEFAULTS, **(settings or {})}
    return {"kind": "audio-logmel", **{k: int(s[k]) for k in _SPECTROGRAM_KEYS}}


def audio_outcome(path, settings: dict | None = None) -> tuple[np.ndarray, str, str]:
    """Decode one file's sound: ``(logmel (n_mels, t) float32, outcome, reason)``.

    ``t`` is 0 for ``no-audio`` and ``decode-error``; the reason is empty unless decoding failed.
    Never raises for a bad file.
    """
    from ..media import read_audio

    s = {**AUDIO_DEFAULTS, **(settings or {})}
    seconds = s["max_chunks"] * s["chunk_frames"] * s["hop_length"] / s["sample_rate"]
    empty = np.zeros((s["n_mels"], 0), np.float32)
    try:
        wav = read_audio(path, sample_rate=s["sample_rate"], max_seconds=seconds)
    except (MediaDecodeError, OSError, ValueError) as exc:
        return empty, "decode-error", str(exc)
    if wav.size == 0:
        return empty, "no-audio", ""
    outcome = "silent" if float(np.abs(wav).max()) < SILENCE_PEAK else "ok"
    return normalised_log_mel(wav, s), outcome, ""


@dataclass
class AudioRows:
    """Cached sound of a list of files, in their order.

    Attributes:
        logmels: per file ``(n_mels, t)`` float32 (t = 0 without sound data).
        outcomes: per file one of `AUDIO_OUTCOMES`.
        reasons: path -> why decoding failed (``decode-error`` files decoded in this call).
    """

    logmels: list[np.ndarray]
    outcomes: list[str]
    reasons: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Files per outcome (every outcome listed)."""
        return {o: self.outcomes.count(o) for o in AUDIO_OUTCOMES}

    def has_sound(self) -> np.ndarray:
        """``(N,)`` bool: outcome ``ok``."""
        return np.array([o == "ok" for o in self.outcomes], dtype=bool)


def cached_audio_rows(paths: Sequence, root, settings: dict | None = None) -> AudioRows:
    """Log-mels and outcomes of `paths`, decoding only the files not in the store yet.

    Args:
        paths: media files (the store keys are their path strings).
        root: stores root (`store_folder(root, audio_tag(settings))` is the store).
        settings: `AUDIO_DEFAULTS` overrides (the encoder's settings).

    Returns:
        `AudioRows` in `paths` order. ``decode-error`` outcomes are stored too, so a rerun does
        not retry a corrupt file (delete the store folder to retry).
    """
    s = {**AUDIO_DEFAULTS, **(settings or {})}
    tag = audio_tag(s)
    width = s["max_chunks"] * s["chunk_frames"]
    schema = {"logmel": (np.float16, (s["n_mels"], width)), "frames": (np.int32, ()),
              "status": (np.int8, ())}
    keys = [str(p) for p in paths]
    reasons: dict[str, str] = {}
    with FeatureStore.open(store_folder(root, tag), tag, schema, shard_size=256) as store:
        for key in dict.fromkeys(k for k in keys if k not in store):
            logmel, outcome, reason = audio_outcome(Path(key), s)
            if reason:
                reasons[key] = reason
            row = np.zeros((s["n_mels"], width), np.float16)
            row[:, : logmel.shape[1]] = logmel
            store.put([key], logmel=row[None], frames=np.array([logmel.shape[1]], np.int32),
                      status=np.array([AUDIO_OUTCOMES.index(outcome)], np.int8))
        store.flush()
        got = store.get(keys) if keys else {"logmel": [], "frames": [], "status": []}
    logmels = [np.asarray(m[:, :int(t)], np.float32) for m, t in zip(got["logmel"], got["frames"])]
    return AudioRows(logmels, [AUDIO_OUTCOMES[int(i)] for i in got["status"]], reasons)
