"""The CLIP4VLA audio tower of a retrieval model, and how its scores join the visual ones.

"We add the visual and audio features together for retrieval" (seed paper, 3.3.3): for a query
x and a video with global visual embedding y^g and audio embedding z^g (all L2-normalised),

    s(x, video) = cos(x, y^g) + w * cos(M x, z^g)

which is the dot product of the query with the summed features when ``M`` is the identity and
``w = 1``. ``M`` (the ``text_map``) is a deviation: the paper fine-tunes the text backbone with the
audio; we keep world-CLIP's text tower frozen and learn one linear map of its embedding into the
audio comparison space (identity at initialisation; ``text_map: false`` keeps the paper's frozen
text exactly). Videos without sound data ("not all videos contain audio information") are
handled by ``missing``:

* ``borrow`` (the paper): "pair it with the audio of the most similar video, which is chosen from
  the corresponding training set according to the cosine similarity of global vision features";
* ``none``: no audio term for that video (s = cos(x, y^g));
* ``encode``: encode what there is (digital silence is then a sound like any other; a file with
  no track or undecodable audio still borrows).

The tower folder (``AudioTower.save``): ``audio_tower.json`` (settings), ``audio/`` (the
`Clip4VLAAudioEncoder`), ``audio_tower.safetensors`` (``text_map`` and the borrowing bank: the
training videos' visual and audio embeddings).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, ModelLoadError

__all__ = [
    "AUDIO_TOWER_FILE",
    "MISSING_POLICIES",
    "AudioTower",
    "borrow_audio",
    "fuse_scores",
    "is_audio_tower_dir",
]

MISSING_POLICIES = ("borrow", "none", "encode")
AUDIO_TOWER_FILE = "audio_tower.json"
_WEIGHTS = "audio_tower.safetensors"


def _unit(x) -> torch.Tensor:
    return nn.functional.normalize(torch.as_tensor(np.asarray(x), dtype=torch.float32), dim=-1)


def borrow_audio(vision: np.ndarray, bank_vision: np.ndarray,
                 bank_audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The audio embedding of the visually most similar training video (3.3.3).

    Args:
        vision: ``(N, D)`` global visual embeddings of the videos that borrow.
        bank_vision, bank_audio: ``(M, D)`` the training videos' visual and audio embeddings.

    Returns:
        ``(N, D)`` borrowed audio embeddings (unit norm) and ``(N,)`` the lender's bank row.
    """
    if len(bank_vision) == 0:
        raise ConfigError("cannot borrow audio: the audio tower has no training bank")
    sims = _unit(vision) @ _unit(bank_vision).T  # (N, M) cosines of global vision features
    lender = sims.argmax(dim=1).numpy() if len(vision) else np.zeros(0, np.int64)
    return _unit(bank_audio)[lender].numpy(), lender


class AudioTower(nn.Module):
    """Audio encoder + text map + borrowing bank (module docstring).

    Args:
        encoder: a `Clip4VLAAudioEncoder`.
        dim: the joint space size (the text and vision towers').
        text_map: learn ``M`` (False: identity, the paper's frozen text).
        weight: w, the audio term's weight.
        missing: one of `MISSING_POLICIES`.
    """

    def __init__(self, encoder: nn.Module, dim: int, text_map: bool = True, weight: float = 1.0,
                 missing: str = "borrow"):
        super().__init__()
        if missing not in MISSING_POLICIES:
            raise ConfigError(f"missing-audio policy {missing!r}; expected one of "
                              f"{MISSING_POLICIES}")
        self.encoder = encoder
        self.text_map = nn.Linear(dim, dim, bias=False) if text_map else None
        if self.text_map is not None:
            nn.init.eye_(self.text_map.weight)
        self.weight, self.missing = float(weight), missing
        self.register_buffer("bank_vision", torch.zeros(0, dim), persistent=True)
        self.register_buffer("bank_audio", torch.zeros(0, dim), persistent=True)

    @property
    def identity(self) -> str:
        """``<audio encoder identity>+<digest of text map and bank>``: what an index records."""
        from ..encoders.base import state_digest

        rest = nn.Module()
        rest.text_map = self.text_map
        rest.register_buffer("bank_vision", self.bank_vision)
        rest.register_buffer("bank_audio", self.bank_audio)
        return (f"{self.encoder.identity}+{state_digest(rest)}"
                f"/w={self.weight:g}/missing={self.missing}")

    def audio_queries(self, text: torch.Tensor) -> torch.Tensor:
        """``M x`` for text embeddings ``(Q, D)`` (differentiable; identity without a map)."""
        return text if self.text_map is None else self.text_map(text)

    def set_bank(self, vision: np.ndarray, audio: np.ndarray) -> None:
        """Store the training videos' visual and audio embeddings (``(M, D)`` each)."""
        self.bank_vision = _unit(vision)
        self.bank_audio = _unit(audio)

    def video_audio(self, vision: np.ndarray, audio: np.ndarray, outcomes: list[str],
                    missing: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Audio embeddings to score, per video, under a missing-audio policy.

        Args:
            vision: ``(N, D)`` global visual embeddings.
            audio: ``(N, D)`` encoded audio (rows of videos without data are ignored).
            outcomes: per video an outcome of `mumur.data.audio_features.AUDIO_OUTCOMES`.
            missing: policy (default: the tower's).

        Returns:
            ``(N, D)`` unit audio embeddings (zero rows: no audio term) and ``(N,)`` int8 source
            per video: 0 own audio, 1 borrowed, 2 none.
        """
        missing = missing or self.missing
        out, source = _unit(audio).numpy().copy(), np.zeros(len(outcomes), np.int8)
        lacks = np.array([o != "ok" if missing != "encode" else o not in ("ok", "silent")
                          for o in outcomes], dtype=bool)
        if lacks.any() and missing == "none":
            out[lacks], source[lacks] = 0.0, 2
        elif lacks.any():
            out[lacks], _ = borrow_audio(vision[lacks], self.bank_vision.numpy(),
                                         self.bank_audio.numpy())
            source[lacks] = 1
        return out, source

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tower folder (module docstring)."""
        from safetensors.torch import save_file

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.save(folder / "audio")
        tensors = {"bank_vision": self.bank_vision.contiguous(),
                   "bank_audio": self.bank_audio.contiguous()}
        if self.text_map is not None:
            tensors["text_map"] = self.text_map.weight.detach().contiguous()
        save_file(tensors, str(folder / _WEIGHTS))
        settings = {"format": "mumur-audio-tower", "dim": int(self.bank_vision.shape[1]),
                    "text_map": self.text_map is not None, "weight": self.weight,
                    "missing": self.missing}
        (folder / AUDIO_TOWER_FILE).write_text(json.dumps(settings, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike) -> AudioTower:
        """Read a folder written by `save` (eval mode)."""
        from safetensors.torch import load_file

        from ..encoders import load_encoder

        folder = Path(path)
        try:
            settings = json.loads((folder / AUDIO_TOWER_FILE).read_text())
            tensors = load_file(str(folder / _WEIGHTS))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load audio tower {folder}: {exc}") from None
        encoder = load_encoder(str(folder / "audio"), modality="audio")
        tower = cls(encoder, int(settings["dim"]), bool(settings["text_map"]),
                    float(settings["weight"]), str(settings["missing"]))
        if tower.text_map is not None:
            tower.text_map.weight.data.copy_(tensors["text_map"])
        tower.bank_vision, tower.bank_audio = tensors["bank_vision"], tensors["bank_audio"]
        return tower.eval()


def is_audio_tower_dir(path: str | os.PathLike) -> bool:
    """True for a folder written by `AudioTower.save`."""
    return (Path(path) / AUDIO_TOWER_FILE).is_file()


def fuse_scores(text: np.ndarray, audio_text: np.ndarray, vision: np.ndarray,
                audio: np.ndarray | None, weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``s = cos(x, y^g) + w cos(M x, z^g)`` for every query and video (module docstring).

    Args:
        text: ``(Q, D)`` query embeddings x.
        audio_text: ``(Q, D)`` their audio-space versions M x.
        vision: ``(N, D)`` global visual embeddings.
        audio: ``(N, D)`` audio embeddings from `AudioTower.video_audio` (zero rows add
            nothing), or None for visual scores only.

    Returns:
        ``(Q, N)`` total scores and ``(Q, N)`` the audio part alone (zeros without audio).
    """
    visual = (_unit(text) @ _unit(vision).T).numpy()
    if audio is None:
        return visual, np.zeros_like(visual)
    sound = weight * (_unit(audio_text) @ torch.as_tensor(audio, dtype=torch.float32).T).numpy()
    return visual + sound, sound
