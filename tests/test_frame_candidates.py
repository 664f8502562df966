"""The per-frame-maximum candidate source of two-stage search (heads/dcm_fast.py
`frame_vectors`, index/engine.py), issue 14 item 4."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_fast_search import _block_scorer, _head
from test_search import _dcm_engine

from mumur.index.search import SearchEngine


@pytest.mark.parametrize("heads", [1, 4])
def test_frame_vectors_give_the_score_with_attention_on_one_frame(heads):
    head = _head(heads)
    frames, mask = torch.randn(7, 5, 32), torch.ones(7, 5, dtype=torch.bool)
    text = torch.nn.functional.normalize(torch.randn(3, 32), dim=-1)
    with torch.no_grad():
        state = head.index_state(head.contextualize(frames, mask), mask, "ml")
        vectors = head.frame_vectors(state, "ml")  # (7, 5, 32)
        compact = head.compact_index_state(state, "ml")
        for t in range(5):
            one = torch.zeros(7, 5, dtype=torch.bool)
            one[:, t] = True
            exact, _ = head.compact_scorer(text, "ml")(compact, one)  # (3, 7)
            torch.testing.assert_close(text @ vectors[:, t].T, exact, atol=1e-5, rtol=0)
    assert vectors.shape == (7, 5, 32)
    torch.testing.assert_close(vectors.norm(dim=-1), torch.ones(7, 5), atol=1e-5, rtol=0)
    assert head.frame_vectors(  # float16 keys: float16 vectors
        {k: v.half() for k, v in state.items()}, "ml").dtype == torch.float16


def _frames(engine, head) -> np.ndarray:
    parts = dict(zip(["keys", "values_0"], torch.from_numpy(engine.arrays.state).split(16, -1)))
    with torch.no_grad():
        return head.frame_vectors(parts, "ml").numpy()


def test_frame_source_recovers_what_the_pooled_shortlist_misses():
    """A tiny pooled shortlist misses part of the exact top 10 on multi-frame items; adding the
    items with the best per-frame maxima recovers (at least) part of it, every score stays exact,
    and the frame source alone is what brought the extra items in."""
    base, head, _, _ = _dcm_engine(n=300, t=4, dim=16, shortlist=10, topic_noise=1.5)
    scorer = _block_scorer(base, head, 64, 1)
    frames = _frames(base, head)
    rng = np.random.default_rng(3)
    plain = SearchEngine(base.arrays, None, shortlist=10, scorer=scorer, frame_shortlist=0)
    both = SearchEngine(base.arrays, None, shortlist=10, scorer=scorer, frames=frames,
                        frame_shortlist=40)
    assert both.has_frames and not plain.has_frames
    gained = 0
    for _ in range(20):
        q = rng.standard_normal(16).astype(np.float32)
        q /= np.linalg.norm(q)
        exact = {r.id for r in plain.search(q, k=10, exact=True)[0]}
        got_plain = plain.search(q, k=10)[0]
        got_both = both.search(q, k=10)[0]
        a, b = len({r.id for r in got_plain} & exact), len({r.id for r in got_both} & exact)
        assert b >= a
        gained += b - a
        exact_scores = {r.id: r.score for r in plain.search(q, k=300, exact=True)[0]}
        assert all(r.score == pytest.approx(exact_scores[r.id], abs=1e-5) for r in got_both)
        per_frame = (frames.reshape(-1, 16) @ q).reshape(300, 4)
        per_frame[~base.arrays.mask] = -np.inf
        top = set(np.argsort(-per_frame.max(1))[:40] + 1)  # ids are rows + 1
        assert {r.id for r in got_both} - {r.id for r in got_plain} <= top | exact
    assert gained > 0  # the second source matters on this data


def test_frame_source_is_not_built_for_very_large_indexes(monkeypatch):
    import mumur.index.engine as engine_module

    base, head, _, _ = _dcm_engine(n=50, t=4, dim=16, shortlist=10)
    frames = _frames(base, head)
    scorer = _block_scorer(base, head, 64, 1)
    assert SearchEngine(base.arrays, None, scorer=scorer, frames=frames).has_frames
    monkeypatch.setattr(engine_module, "FRAME_SOURCE_MAX", int(base.arrays.mask.sum()) - 1)
    small = SearchEngine(base.arrays, None, shortlist=10, scorer=scorer, frames=frames)
    assert not small.has_frames  # pooled candidates only, still exact scores
    assert len(small.search(frames[0, 0].astype(np.float32), k=5)[0]) == 5
