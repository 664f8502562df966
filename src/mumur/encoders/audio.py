"""Audio encoder: log-mel spectrogram + a small ViT over spectrogram patches, trained from scratch.

Follows the Audio Spectrogram Transformer recipe (Gong et al., 2021, AST): 25 ms Hann window,
10 ms hop, log mel filterbank, 16x16 patches, class-token output. Deviations: non-overlapping
patches (AST uses stride 10), 64 mel bins by default (AST: 128), per-clip standardisation of the
log-mel image instead of AudioSet dataset statistics, random init (no ImageNet weights).
The mel filterbank is written here in torch (torchaudio is not a dependency).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from mumur.encoders.base import Encoder, read_json_file, resolve_file, write_encoder_file
from mumur.errors import EncoderLoadError

__all__ = [
    "AudioConfig",
    "AudioSpectrogramEncoder",
    "build_audio_scratch",
    "load_audio_encoder",
    "log_mel_spectrogram",
    "mel_filterbank",
]

SAMPLE_RATE = 16000


def _hz_to_mel(freq: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + freq / 700.0)  # HTK mel scale


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(
    n_freqs: int,
    n_mels: int,
    sample_rate: int = SAMPLE_RATE,
    f_min: float = 0.0,
    f_max: float | None = None,
) -> torch.Tensor:
    """Triangular mel filters on the HTK scale, unnormalised (as ``torchaudio`` defaults).

    Args:
        n_freqs: number of STFT bins (``n_fft // 2 + 1``).
        n_mels: number of mel bands.
        sample_rate: audio sample rate in Hz.
        f_min: lowest band edge in Hz.
        f_max: highest band edge in Hz (default: Nyquist).

    Returns:
        ``(n_freqs, n_mels)`` float32 matrix; ``power_spec (.., n_freqs) @ fb`` gives mel energies.
    """
    f_max = float(sample_rate) / 2 if f_max is None else f_max
    all_freqs = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)  # (F,)
    m_pts = torch.linspace(
        float(_hz_to_mel(torch.tensor(f_min))),
        float(_hz_to_mel(torch.tensor(f_max))),
        n_mels + 2,
        dtype=torch.float64,
    )
    f_pts = _mel_to_hz(m_pts)  # (n_mels + 2,) band edges / centres in Hz
    f_diff = f_pts[1:] - f_pts[:-1]  # (n_mels + 1,)
    slopes = f_pts[None, :] - all_freqs[:, None]  # (F, n_mels + 2)
    down = -slopes[:, :-2] / f_diff[:-1]  # (F, n_mels) rising edge
    up = slopes[:, 2:] / f_diff[1:]  # (F, n_mels) falling edge
    return torch.clamp(torch.minimum(down, up), min=0.0).float()


def log_mel_spectrogram(
    waveform: torch.Tensor,
    filterbank: torch.Tensor,
    n_fft: int = 400,
    hop_length: int = 160,
) -> torch.Tensor:
    """Natural-log mel energies of a mono waveform.

    Args:
        waveform: ``(n_samples,)`` float32.
        filterbank: ``(n_fft // 2 + 1, n_mels)`` from :func:`mel_filterbank`.
        n_fft: FFT / Hann window length in samples (400 = 25 ms at 16 kHz).
        hop_length: hop in samples (160 = 10 ms at 16 kHz).

    Returns:
        ``(n_mels, n_frames)`` with ``n_frames = n_samples // hop_length + 1`` (centred frames).
    """
    if waveform.numel() < n_fft // 2 + 1:  # reflect padding needs a few samples
        waveform = torch.nn.functional.pad(waveform, (0, n_fft // 2 + 1 - waveform.numel()))
    window = torch.hann_window(n_fft, dtype=waveform.dtype, device=waveform.device)
    spec = torch.stft(waveform, n_fft, hop_length, window=window, center=True, return_complex=True)
    power = spec.abs() ** 2  # (F, n_frames)
    mel = filterbank.to(power.device).T @ power  # (n_mels, n_frames)
    return torch.log(mel + 1e-6)


class AudioConfig(dict):
    """Settings of an :class:`AudioSpectrogramEncoder` (a plain dict, JSON-serialisable)."""

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "sample_rate": SAMPLE_RATE,
        "n_mels": 64,
        "n_fft": 400,
        "hop_length": 160,
        "num_frames": 512,
        "patch_size": 16,
        "hidden_size": 192,
        "num_layers": 4,
        "num_heads": 3,
        "mlp_ratio": 4,
        "projection_dim": None,
    }

    def __init__(self, **overrides: Any):
        unknown = set(overrides) - set(self.DEFAULTS)
        if unknown:
            raise EncoderLoadError(f"cannot build audio encoder: unknown options {sorted(unknown)}")
        super().__init__({**self.DEFAULTS, **overrides})
        for key in ("n_mels", "num_frames"):
            if self[key] % self["patch_size"]:
                raise EncoderLoadError(
                    f"cannot build audio encoder: {key}={self[key]} is not a multiple of "
                    f"patch_size={self['patch_size']}"
                )


class AudioSpectrogramEncoder(Encoder):
    """Spectrogram ViT: waveforms (16 kHz) -> log-mel image ``(1, n_mels, num_frames)`` -> ViT.

    Clips longer than ``num_frames * hop_length`` samples are cut (the first seconds are kept),
    shorter ones are padded with zeros after standardisation; silence standardises to zeros.

    Args:
        config: an :class:`AudioConfig`.
        source: name recorded in the identity.
    """

    modality = "audio"
    kind = "audio-vit"

    def __init__(self, config: AudioConfig, source: str = "audio-scratch"):
        from transformers import ViTConfig, ViTModel

        dim = int(config["projection_dim"] or config["hidden_size"])
        super().__init__(source, dim, trainable=True)
        self.config = AudioConfig(**config)
        c = self.config
        vit_config = ViTConfig(
            image_size=(c["n_mels"], c["num_frames"]),
            patch_size=c["patch_size"],
            num_channels=1,
            hidden_size=c["hidden_size"],
            num_hidden_layers=c["num_layers"],
            num_attention_heads=c["num_heads"],
            intermediate_size=c["hidden_size"] * c["mlp_ratio"],
        )
        self.vit = ViTModel(vit_config, add_pooling_layer=False)
        self.projection = nn.Linear(c["hidden_size"], dim)
        fb = mel_filterbank(c["n_fft"] // 2 + 1, c["n_mels"], c["sample_rate"])
        self.register_buffer("filterbank", fb, persistent=False)  # (F, n_mels)

    @property
    def sample_rate(self) -> int:
        """Expected input sample rate in Hz."""
        return int(self.config["sample_rate"])

    def preprocess(self, waveforms: Sequence[Any]) -> torch.Tensor:
        """Log-mel images of a batch of mono waveforms.

        Args:
            waveforms: list of 1-D float arrays / tensors at ``sample_rate`` (may be empty).

        Returns:
            ``torch.FloatTensor (n, 1, n_mels, num_frames)`` standardised per clip.
        """
        c = self.config
        out = torch.zeros(len(waveforms), 1, c["n_mels"], c["num_frames"])  # (n, 1, M, T)
        max_samples = (c["num_frames"] - 1) * c["hop_length"]
        for i, wav in enumerate(waveforms):
            wav = torch.as_tensor(np.asarray(wav, dtype=np.float32)).reshape(-1)[:max_samples]
            if wav.numel() == 0:
                continue  # no audio: all-zero image
            logmel = log_mel_spectrogram(wav, self.filterbank, c["n_fft"], c["hop_length"])
            logmel = logmel[:, : c["num_frames"]]  # (M, T')
            std = logmel.std() if logmel.numel() > 1 else torch.tensor(0.0)
            logmel = (logmel - logmel.mean()) / (std + 1e-5)
            out[i, 0, :, : logmel.shape[1]] = logmel
        return out

    def _inputs(self, batch: Any) -> torch.Tensor:
        features = batch if isinstance(batch, torch.Tensor) else self.preprocess(batch)
        return features.to(self.device, dtype=self.projection.weight.dtype)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Args: features ``(n, 1, n_mels, num_frames)``. Returns: ``(n, dim)`` un-normalised."""
        hidden = self.vit(pixel_values=features).last_hidden_state  # (n, 1 + P, H), layer-normed
        return self.projection(hidden[:, 0])  # (n, dim) class token

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``mumur_encoder.json`` (settings) + ``model.safetensors``."""
        from safetensors.torch import save_model

        folder = write_encoder_file(path, self.kind, source=self.source, config=dict(self.config))
        save_model(self, str(folder / "model.safetensors"))
        return folder


def build_audio_scratch(seed: int | None = None, **options: Any) -> AudioSpectrogramEncoder:
    """A randomly initialised spectrogram ViT named ``audio-scratch``.

    Args:
        seed: seed for the initialisation (None: the global torch RNG).
        **options: :class:`AudioConfig` overrides (``n_mels``, ``num_frames``, ``hidden_size``...).

    Returns:
        A trainable ``AudioSpectrogramEncoder``.
    """
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return AudioSpectrogramEncoder(AudioConfig(**options))


def load_audio_encoder(name_or_path: str) -> AudioSpectrogramEncoder:
    """Load a folder written by :meth:`AudioSpectrogramEncoder.save`.

    Args:
        name_or_path: local folder or hub id.

    Returns:
        The encoder in eval mode.
    """
    from safetensors.torch import load_model

    saved = read_json_file(name_or_path, "mumur_encoder.json")
    encoder = AudioSpectrogramEncoder(
        AudioConfig(**saved["config"]), saved.get("source", name_or_path)
    )
    weights = resolve_file(name_or_path, "model.safetensors")
    try:
        load_model(encoder, weights, strict=True)
    except RuntimeError as exc:
        raise EncoderLoadError(f"cannot load encoder {name_or_path!r}: {exc}") from exc
    return encoder.eval()
