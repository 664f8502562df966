"""A tower that is not loaded: what an index recorded about it, standing in for it.

A text query needs the text towers and the head, never the vision tower, yet the model's identity
(which the index checks on every open) covers every encoder. `mumur index` records the vision
tower's identity, size and input side (`encoder_record`); a text search builds the model with a
`RecordedEncoder` in the vision slot, so the identity it computes is the index's exactly when the
text towers and the head are the index's, and the vision weights are neither read nor built.
Calling it (an image query) raises; `mumur.Index` loads the real tower for those.
"""

from __future__ import annotations

import os
from pathlib import Path

from mumur.encoders.base import Encoder
from mumur.errors import EncoderLoadError

__all__ = ["RecordedEncoder", "encoder_record"]


def encoder_record(encoder: Encoder) -> dict:
    """What a `RecordedEncoder` needs to stand in for `encoder`: modality, identity, dim,
    source, image_size (vision; else None)."""
    size = getattr(encoder, "image_size", None)
    return {"modality": encoder.modality, "identity": encoder.identity, "dim": int(encoder.dim),
            "source": encoder.source, "image_size": int(size) if size is not None else None}


class RecordedEncoder(Encoder):
    """Stands in for an encoder that was not loaded (see the module docstring).

    Args:
        record: `encoder_record` of the real encoder.
    """

    kind = "recorded"

    def __init__(self, record: dict):
        try:
            super().__init__(record["source"], record["dim"], trainable=False)
            self.modality = str(record["modality"])
            self._recorded_identity = str(record["identity"])
        except (KeyError, TypeError) as exc:
            raise EncoderLoadError(f"invalid encoder record {record!r}: {exc}") from None
        if record.get("image_size") is not None:
            self.image_size = int(record["image_size"])

    @property
    def identity(self) -> str:
        """The recorded encoder's identity."""
        return self._recorded_identity

    def _not_loaded(self) -> EncoderLoadError:
        return EncoderLoadError(f"the {self.modality} encoder {self.identity} was not loaded "
                                "(only its record); load the model in full to use it")

    def preprocess(self, images):
        raise self._not_loaded()

    def forward(self, *args, **kwargs):
        raise self._not_loaded()

    def save(self, path: str | os.PathLike) -> Path:
        raise self._not_loaded()
