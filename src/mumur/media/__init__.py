"""Media decoding (PyAV / PIL, seek-based frame sampling, audio) and CLIP preprocessing.

The decoding API is `mumur.media.decode`'s, re-exported here name for name; preprocessing is
`mumur.media.transforms`'s `ClipPreprocess` with CLIP's mean and std.
"""

from __future__ import annotations

from . import decode
from .decode import *  # noqa: F403 - decode's __all__ is this package's decoding API
from .transforms import CLIP_MEAN, CLIP_STD, ClipPreprocess

__all__ = [*decode.__all__, "CLIP_MEAN", "CLIP_STD", "ClipPreprocess"]
