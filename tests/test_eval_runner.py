"""The evaluation runner on a tiny random DCM model and feature inputs (no media decoding)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from torch import nn

from mumur.data.dataset import RetrievalDataset
from mumur.eval.metrics import t2v_metrics, v2t_metrics
from mumur.eval.runner import encode_dataset_media, evaluate_states
from mumur.model import create_model

N_ITEMS, N_FRAMES, FRAME_DIM = 11, 3, 6


class HashTextEncoder(nn.Module):
    """A deterministic stand-in text encoder: each string maps to a fixed random vector."""

    dim = 8

    def forward(self, texts: list[str]) -> torch.Tensor:
        seeds = [int(hashlib.sha1(t.encode()).hexdigest()[:8], 16) for t in texts]
        return torch.stack([torch.randn(self.dim, generator=torch.Generator().manual_seed(s))
                            for s in seeds])


@pytest.fixture
def toy():
    torch.manual_seed(0)
    model = create_model("mumur-dcm", text_en=HashTextEncoder(), embed_dim=8,
                         frame_dim=FRAME_DIM, num_frames=N_FRAMES).eval()
    rng = np.random.default_rng(0)
    caption_item = rng.integers(0, N_ITEMS - 2, size=25)  # unsorted; the last items uncaptioned
    captions = [(int(i), lang, f"{lang} caption {k} of item {i}")
                for lang in ("en", "de") for k, i in enumerate(caption_item)]
    dataset = RetrievalDataset("toy", "test", [f"v{i}" for i in range(N_ITEMS)], captions)
    features = rng.normal(size=(N_ITEMS, N_FRAMES, FRAME_DIM)).astype(np.float32)
    mask = np.ones((N_ITEMS, N_FRAMES), dtype=bool)
    mask[::3, -1] = False  # some padding
    states = encode_dataset_media(model, dataset, frame_features=(features, mask),
                                  progress=False)
    return model, dataset, states


def _count_scored_pairs(model, monkeypatch) -> list[tuple[int, int]]:
    """Record the (texts, items) shape of every head scoring call."""
    calls = []
    for name in ("similarity", "score_index_state"):
        original = getattr(model.head, name)

        def wrapped(text_emb, frames_or_state, mask, branch, _original=original):
            calls.append((text_emb.shape[0], mask.shape[0]))
            return _original(text_emb, frames_or_state, mask, branch)

        monkeypatch.setattr(model.head, name, wrapped)
    return calls


def test_each_score_computed_once_in_bounded_blocks(toy, monkeypatch):
    model, dataset, states = toy
    calls = _count_scored_pairs(model, monkeypatch)
    evaluate_states(model, dataset, states)
    n_captions = len(dataset.captions)  # both languages
    assert sum(n * b for n, b in calls) == n_captions * N_ITEMS  # not 3x (t2v, then v2t twice)
    calls.clear()
    evaluate_states(model, dataset, states, caption_block=4, item_block=3)
    assert sum(n * b for n, b in calls) == n_captions * N_ITEMS
    assert max(n for n, _ in calls) <= 4 and max(b for _, b in calls) <= 3  # items blocked too


@pytest.mark.parametrize("protocol", ["caption", "group"])
def test_blocked_evaluation_equals_dense_metrics(toy, protocol):
    model, dataset, states = toy
    result = evaluate_states(model, dataset, states, protocol=protocol, caption_block=4,
                             item_block=3)
    for lang in ("en", "de"):
        texts, caption_item = dataset.captions_for(lang)
        sim = model.score(model.encode_text(texts, branch="en"), states.frames_ctx,
                          states.mask).numpy()  # (n_captions, n_items), the reference path
        got = result["languages"][lang]
        assert got["branch"] == "en"
        for key, want in (("t2v", t2v_metrics(sim, caption_item)),
                          ("v2t", v2t_metrics(sim, caption_item, protocol))):
            assert got[key].keys() == want.keys()
            for k in want:
                assert got[key][k] == pytest.approx(want[k]), (lang, key, k)
