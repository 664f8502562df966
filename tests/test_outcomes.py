"""Per-query outcomes (eval/outcomes.py) equal the reference path: ranks from the dense score
matrix, the top-1 item from `similarity`, the peak frame from `attention`; in blocks of any size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_eval_runner import FRAME_DIM, N_FRAMES, N_ITEMS, HashTextEncoder, RetrievalDataset

from mumur.eval.metrics import t2v_ranks, v2t_ranks
from mumur.eval.outcomes import frame_times_of, query_outcomes
from mumur.eval.runner import encode_dataset_media
from mumur.model import create_model


@pytest.fixture(params=["mumur-dcm", "meanP"])
def toy(request):
    torch.manual_seed(0)
    model = create_model(request.param, text_en=HashTextEncoder(), embed_dim=8,
                         frame_dim=FRAME_DIM, num_frames=N_FRAMES).eval()
    rng = np.random.default_rng(1)
    caption_item = rng.integers(0, N_ITEMS - 2, size=25)
    captions = [(int(i), "en", f"caption {k} of item {i}") for k, i in enumerate(caption_item)]
    dataset = RetrievalDataset("toy", "test", [f"v{i}" for i in range(N_ITEMS)], captions)
    features = rng.normal(size=(N_ITEMS, N_FRAMES, FRAME_DIM)).astype(np.float32)
    mask = np.ones((N_ITEMS, N_FRAMES), dtype=bool)
    mask[::3, -1] = False
    mask[4] = False  # an item with no valid frame
    mask[4, 0] = True
    states = encode_dataset_media(model, dataset, frame_features=(features, mask),
                                  progress=False)
    return model, dataset, states


@pytest.mark.parametrize("blocks", [(256, 512), (4, 3), (1, 1)])
def test_outcomes_equal_the_reference_path(toy, blocks):
    model, dataset, states = toy
    texts, caption_item = dataset.captions_for("en")
    with torch.no_grad():
        text_emb = model.encode_text(texts, branch="en")
        sim = model.head.similarity(text_emb, states.frames_ctx, states.mask, "en").numpy()
        attention = model.head.attention(text_emb, states.frames_ctx, states.mask, "en").numpy()
    out = query_outcomes(model, dataset, states, "en", text_batch_size=blocks[0],
                         item_block=blocks[1])
    assert out.branch == "en" and out.n_items == N_ITEMS
    np.testing.assert_array_equal(out.caption_item, caption_item)
    np.testing.assert_array_equal(out.ranks, t2v_ranks(sim, caption_item))
    np.testing.assert_array_equal(out.v2t_ranks, v2t_ranks(sim, caption_item))
    np.testing.assert_array_equal(out.top1, sim.argmax(axis=1))
    mask = states.mask.numpy()
    want = [int(np.argmax(np.where(mask[i], attention[c, i], -np.inf)))
            for c, i in enumerate(caption_item)]
    np.testing.assert_array_equal(out.peak_frame, want)
    assert all(mask[i, f] for i, f in zip(caption_item, out.peak_frame))


def test_frame_times_and_missing_language(toy):
    model, dataset, states = toy
    times = np.arange(N_ITEMS * N_FRAMES, dtype=np.float32).reshape(N_ITEMS, N_FRAMES)
    assert frame_times_of(times, [2, 3], [1, -1]) == [float(times[2, 1]), None]
    from mumur.errors import DatasetError

    with pytest.raises(DatasetError, match="no 'de' captions"):
        query_outcomes(model, dataset, states, "de")
