"""CLIP4VLA audio: spectrogram chunking, the encoder initialised from a vision tower, and per-file
sound outcomes (files written by the test)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import write_sound_video as _write

from mumur.data.audio_features import AUDIO_OUTCOMES, audio_outcome, cached_audio_rows
from mumur.encoders.clip4vla import (
    Clip4VLAAudioEncoder,
    chunk_spectrogram,
    normalised_log_mel,
)


def _tone(seconds: float, rate: int = 16000, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ------------------------------------------------------------------------------- chunking

def test_chunks_are_non_overlapping_time_slices_in_order():
    logmel = torch.arange(4 * 10, dtype=torch.float32).reshape(4, 10)  # (H=4, t=10)
    chunks, mask = chunk_spectrogram(logmel, chunk_frames=3, max_chunks=5)
    assert chunks.shape == (5, 4, 3)
    assert mask.tolist() == [True, True, True, True, False]  # ceil(10 / 3) = 4 images
    for j in range(3):
        assert torch.equal(chunks[j], logmel[:, 3 * j:3 * j + 3])
    assert torch.equal(chunks[3, :, 0], logmel[:, 9]) and not chunks[3, :, 1:].any()
    assert not chunks[4].any()
    # frames past max_chunks * W are dropped; concatenating the chunks gives the spectrogram back
    chunks, mask = chunk_spectrogram(logmel, chunk_frames=2, max_chunks=3)
    assert mask.all() and torch.equal(torch.cat(list(chunks), dim=1), logmel[:, :6])


def test_empty_spectrogram_gives_one_silent_chunk():
    chunks, mask = chunk_spectrogram(np.zeros((4, 0), np.float32), chunk_frames=3, max_chunks=2)
    assert mask.tolist() == [True, False] and not chunks.any()


def test_log_mel_maps_silence_to_zero_and_sound_above():
    silent = normalised_log_mel(np.zeros(16000, np.float32))
    loud = normalised_log_mel(_tone(1.0))
    assert silent.shape == loud.shape == (64, 101)
    assert np.abs(silent).max() < 1e-6 and loud.max() > 1.0


# -------------------------------------------------------------------------------- encoder

@pytest.fixture(scope="module")
def world_vision():
    import mumur

    return mumur.load_encoder("world-clip", modality="vision")


def test_audio_encoder_starts_as_the_vision_tower(world_vision, tmp_path):
    audio = Clip4VLAAudioEncoder.from_vision(world_vision)
    v_state, a_state = world_vision.model.state_dict(), audio.model.state_dict()
    assert v_state.keys() == a_state.keys()
    assert all(torch.equal(v_state[k], a_state[k]) for k in v_state)
    assert audio.model is not world_vision.model  # a copy: training audio leaves vision alone
    # a chunk equals the vision tower on the same grey image (3 channels)
    chunk = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        want = world_vision(chunk.expand(-1, 3, -1, -1))
        got = audio(chunk.unsqueeze(1).squeeze(2), torch.ones(1, 1, dtype=torch.bool))
    assert torch.allclose(want, got, atol=1e-5)
    # save / load round trip through mumur.load_encoder
    import mumur

    wav = [_tone(2.0), np.zeros(0, np.float32)]
    back = mumur.load_encoder(str(audio.save(tmp_path / "a")), modality="audio")
    assert back.identity == audio.identity
    assert torch.allclose(back.encode(wav), audio.encode(wav), atol=1e-6)


def test_audio_embedding_is_the_mean_over_filled_chunks_only(world_vision):
    audio = Clip4VLAAudioEncoder.from_vision(world_vision, max_chunks=4).eval()
    chunks, mask = audio.preprocess([_tone(1.0)])  # 101 frames: 2 chunks of 64
    assert mask.tolist() == [[True, True, False, False]]
    with torch.no_grad():
        each = audio.model(pixel_values=chunks[0, :2].unsqueeze(1).expand(-1, 3, -1, -1))
        pooled = audio((chunks, mask))
        unmasked = audio(chunks)  # every chunk, padding included
    assert torch.allclose(pooled[0], each.image_embeds.mean(0), atol=1e-5)
    assert not torch.allclose(pooled, unmasked, atol=1e-4)


# ------------------------------------------------------------------------------- decoding

def test_per_file_outcomes_never_raise(tmp_path):
    files = {
        "ok": _write(tmp_path / "tone.mp4", _tone(1.0)),
        "odd-rate": _write(tmp_path / "odd.mp4", _tone(1.0, 44100), rate=44100, layout="stereo"),
        "silent": _write(tmp_path / "silent.mp4", np.zeros(16000, np.float32)),
        "no-audio": _write(tmp_path / "mute.mp4", None),
    }
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    files["corrupt"] = str(corrupt)
    files["missing"] = str(tmp_path / "gone.mp4")
    got = {name: audio_outcome(path) for name, path in files.items()}
    assert got["ok"][1] == "ok" and got["odd-rate"][1] == "ok"
    # resampled to 16 kHz: the same number of frames for the same duration (AAC priming aside)
    assert abs(got["ok"][0].shape[1] - got["odd-rate"][0].shape[1]) <= 3
    assert got["silent"][1] == "silent"
    assert got["no-audio"][1] == "no-audio" and got["no-audio"][0].shape[1] == 0
    for bad in ("corrupt", "missing"):
        assert got[bad][1] == "decode-error" and got[bad][2]


def test_audio_rows_are_cached_with_their_outcome(tmp_path, monkeypatch):
    paths = [_write(tmp_path / "tone.mp4", _tone(0.5)), _write(tmp_path / "mute.mp4", None),
             str(tmp_path / "gone.mp4")]
    settings = {"max_chunks": 2}
    rows = cached_audio_rows(paths, tmp_path / "cache", settings)
    assert rows.outcomes == ["ok", "no-audio", "decode-error"]
    assert rows.counts() == {"ok": 1, "silent": 0, "no-audio": 1, "decode-error": 1}
    assert set(rows.reasons) == {paths[2]}
    assert rows.logmels[0].shape[0] == 64 and 50 <= rows.logmels[0].shape[1] <= 54  # AAC delay
    assert rows.logmels[1].shape == (64, 0)

    import mumur.data.audio_features as af

    def refuse(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(af, "audio_outcome", refuse)
    again = cached_audio_rows(paths, tmp_path / "cache", settings)
    assert again.outcomes == rows.outcomes
    assert np.allclose(again.logmels[0], rows.logmels[0], atol=1e-2)  # stored as float16
    assert set(AUDIO_OUTCOMES) == {"ok", "silent", "no-audio", "decode-error"}
