"""CLIP4VLA training: the named loss terms, the SimCLR spectrogram masking, a short training run
on a hand-made world, and the ranks of the with/without-audio evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mumur.train.clip4vla.evaluate import ranks_of
from mumur.train.clip4vla.losses import LOSS_TERMS, clip4vla_loss, mask_spectrogram


def test_loss_terms_are_named_and_follow_the_paper():
    torch.manual_seed(0)
    audio, text, vision = torch.randn(6, 8), torch.randn(6, 8), torch.randn(6, 8)
    masked = audio + 0.01 * torch.randn(6, 8)
    scale = torch.tensor(10.0)
    out = clip4vla_loss(audio, masked, text, vision, scale)
    assert set(out.terms) == set(LOSS_TERMS)
    assert torch.isclose(out.loss, sum(out.terms.values()))
    # inter-modal: symmetric InfoNCE over cosine logits
    logits = scale * F.normalize(audio, dim=-1) @ F.normalize(text, dim=-1).T
    target = torch.arange(6)
    want = F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)
    assert torch.isclose(out.terms["audio_text"], want)
    # intra-modal: original clip i against the batch of masked clips, one direction
    logits = scale * F.normalize(audio, dim=-1) @ F.normalize(masked, dim=-1).T
    assert torch.isclose(out.terms["audio_intra"], F.cross_entropy(logits, target))
    # aligned pairs give a lower loss than shuffled ones
    aligned = clip4vla_loss(audio, None, audio.clone(), None, scale).terms["audio_text"]
    shuffled = clip4vla_loss(audio, None, audio[torch.randperm(6)], None, scale)
    assert aligned < shuffled.terms["audio_text"]
    # weights: a zero-weight term and a missing input are left out
    part = clip4vla_loss(audio, None, text, vision, scale, {"audio_vision": 0.0})
    assert set(part.terms) == {"audio_text"}
    weighted = clip4vla_loss(audio, masked, text, vision, scale, {"audio_text": 2.0})
    assert torch.isclose(weighted.loss, out.loss + out.terms["audio_text"])


def test_masking_zeroes_one_mel_band_and_one_time_span():
    gen = torch.Generator().manual_seed(3)
    chunks = torch.rand(4, 3, 16, 8) + 0.5  # no zeros before masking
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    same = mask_spectrogram(chunks, mask, gen, mel_fraction=0.0, time_fraction=0.0)
    assert torch.equal(same, chunks)
    out = mask_spectrogram(chunks, mask, gen, mel_fraction=0.5, time_fraction=0.5)
    assert out.shape == chunks.shape and torch.equal(chunks, chunks.clamp(min=0.5))
    for i in range(4):
        flat = out[i].permute(1, 0, 2).reshape(16, -1)  # (M, k * W): the clip's time axis
        zero_rows = (flat == 0).all(1).nonzero().flatten().tolist()
        if zero_rows:  # one contiguous band of mel channels
            assert zero_rows == list(range(zero_rows[0], zero_rows[-1] + 1))
        filled = int(mask[i].sum()) * 8
        zero_cols = (flat == 0).all(0).nonzero().flatten().tolist()
        assert all(c < filled for c in zero_cols)  # the span stays inside the clip
        kept = flat != 0
        assert torch.equal(flat[kept], chunks[i].permute(1, 0, 2).reshape(16, -1)[kept])


def test_ranks_count_strictly_better_items():
    scores = np.array([[0.9, 0.5, 0.9], [0.1, 0.2, 0.3]])
    assert ranks_of(scores, np.array([0, 0])).tolist() == [1, 3]
    assert ranks_of(scores, np.array([1, 2])).tolist() == [3, 1]


@pytest.fixture(scope="module")
def toy_world():
    """Two sounds (a high tone and digital silence) told apart only by the captions."""
    from mumur.data.audio_features import AudioRows
    from mumur.data.dataset import RetrievalDataset
    from mumur.encoders.clip4vla import normalised_log_mel
    from mumur.train.clip4vla.data import WorldAudio, load_towers

    rng = np.random.default_rng(0)
    n = 48
    beeps = np.arange(n) % 2 == 0
    t = np.arange(16000) / 16000
    logmels, captions = [], []
    for i in range(n):
        wav = 0.3 * np.sin(2 * np.pi * 1500 * t) if beeps[i] else np.zeros(16000)
        logmels.append(normalised_log_mel(wav.astype(np.float32), {"max_chunks": 2}))
        captions.append((i, "en", "A red circle beeps." if beeps[i] else "A red circle."))
    ds = RetrievalDataset("toy", "train", [f"v{i}" for i in range(n)], captions)
    vision = rng.normal(size=(n, 192)).astype(np.float32)
    vision /= np.linalg.norm(vision, axis=1, keepdims=True)
    rows = AudioRows(logmels, ["ok" if b else "silent" for b in beeps])
    return WorldAudio(ds, vision, rows), load_towers("world-clip", None)


def test_training_lowers_the_loss_and_fills_the_bank(toy_world, tmp_path):
    from mumur.model.audio import AudioTower
    from mumur.train.clip4vla.run import AudioTrainConfig, train_audio_tower

    world, towers = toy_world
    cfg = AudioTrainConfig(steps=12, batch_size=16, lr=3e-4, warmup=2, log_every=11)
    tower, summary = train_audio_tower(world, towers, {"max_chunks": 2}, cfg, seed=0,
                                       cache_root=tmp_path, log=lambda *_: None)
    first, last = summary["history"][0], summary["history"][-1]
    assert set(LOSS_TERMS) <= set(first)
    assert last["loss"] < first["loss"]
    assert summary["bank_videos"] == 24 and tuple(tower.bank_audio.shape) == (24, 192)
    # vision is untouched (a copy was trained) and the tower round-trips with its identity
    assert not any(p.grad is not None for p in towers.vision.parameters())
    back = AudioTower.load(tower.save(tmp_path / "tower"))
    assert back.identity == tower.identity
    again, _ = train_audio_tower(world, towers, {"max_chunks": 2}, cfg, seed=0,
                                 cache_root=tmp_path, log=lambda *_: None)
    assert again.identity == tower.identity  # seeded: the same run twice gives the same tower

    from mumur.train.clip4vla.evaluate import select_audio_weight

    weight, scores = select_audio_weight(tower, towers, world, tmp_path, [1.0, 0.1])
    assert set(scores) == {"0.1", "1"} and weight in (0.1, 1.0)
    assert scores[f"{weight:g}"] == max(scores.values())


@pytest.mark.slow
def test_quick_study_writes_the_table(tmp_path):
    """`mumur audio study --quick`: worlds, 2 variants x 1 seed, the markdown + JSON table."""
    import json

    from typer.testing import CliRunner

    from mumur.cli import app

    result = CliRunner().invoke(app, ["audio", "study", "--quick", "--out", str(tmp_path / "w"),
                                      "--results", str(tmp_path / "res")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "res" / "audio.json").read_text())
    body = summary["variants"]["clip4vla"]
    assert {"visual", "audio-borrow", "audio-none", "audio-encode"} <= set(body["systems"])
    cell = body["systems"]["audio-borrow"]["all"]["sound"]
    assert cell["n_queries"] > 0 and "delta_R1" in cell
    assert "| en |" in (tmp_path / "res" / "audio.md").read_text()
    # one tower for an index, from the same (cached) train world
    result = CliRunner().invoke(app, ["audio", "train", "--quick", "--work", str(tmp_path / "w"),
                                      "--out", str(tmp_path / "tower")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tower" / "audio_tower.json").is_file()
    assert json.loads((tmp_path / "tower" / "training_summary.json").read_text())["steps"] == 20
