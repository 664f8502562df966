"""MLMM's objectives (mumur.rerank.objectives, §3.1.2 eq. 1-4): masking, ITM pairs and the
losses, on known answers."""

from __future__ import annotations

import math

import pytest
import torch

from mumur.rerank.objectives import (
    IGNORE,
    itm_loss,
    itm_pairs,
    mask_frames,
    mask_tokens,
    mlm_loss,
    mrc_loss,
    mrfr_loss,
    soft_labels,
)

SPECIAL = (0, 1, 2, 3, 4)  # pad, unk, <s>, </s>, <mask>


def _ids(b=400, length=20, vocab=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (b, length), generator=g)
    ids[:, 0], ids[:, -1] = 2, 3
    valid = torch.ones(b, length, dtype=torch.bool)
    valid[: b // 2, 12:] = False  # padded tails
    ids[~valid] = 0
    return ids, valid


def test_mask_tokens_never_selects_special_or_padding_and_labels_the_originals():
    ids, valid = _ids()
    masked, labels = mask_tokens(ids, valid, vocab_size=50, mask_id=4, special_ids=SPECIAL,
                                 prob=0.15, generator=torch.Generator().manual_seed(1))
    chosen = labels != IGNORE
    assert not chosen[~valid].any()
    assert not chosen[:, 0].any() and not chosen[torch.arange(len(ids)), -1][200:].any()
    assert torch.equal(labels[chosen], ids[chosen])  # target = the original token
    assert torch.equal(masked[~chosen], ids[~chosen])  # untouched outside the selection
    assert chosen.any(dim=1).all()  # at least one per sequence
    rate = chosen.sum() / (valid.sum() - 2 * len(ids))
    assert 0.13 < float(rate) < 0.19
    as_mask = (masked[chosen] == 4).float().mean()
    kept = (masked[chosen] == ids[chosen]).float().mean()
    assert 0.75 < float(as_mask) < 0.85  # BERT: 80% <mask>
    assert 0.06 < float(kept) < 0.15  # 10% kept (+ random draws equal to the original)
    assert not torch.isin(masked[chosen & (masked != 4)], torch.tensor([0, 1, 2, 3])).any()


def test_mask_tokens_is_deterministic_given_the_generator():
    ids, valid = _ids()
    a = mask_tokens(ids, valid, vocab_size=50, mask_id=4, special_ids=SPECIAL, prob=0.15,
                    generator=torch.Generator().manual_seed(7))
    b = mask_tokens(ids, valid, vocab_size=50, mask_id=4, special_ids=SPECIAL, prob=0.15,
                    generator=torch.Generator().manual_seed(7))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_mask_frames_masks_valid_frames_only_at_least_one_each():
    valid = torch.ones(300, 12, dtype=torch.bool)
    valid[:100, 1:] = False  # images: one frame
    masked = mask_frames(valid, prob=0.15, generator=torch.Generator().manual_seed(0))
    assert not masked[~valid].any()
    assert masked.any(dim=1).all()
    assert masked[:100, 0].all()  # the only frame of an image is the one masked
    assert 0.12 < float(masked[100:].float().mean()) < 0.2


def test_itm_pairs_labels_mark_exactly_the_mismatched_rows():
    visual, text, labels = itm_pairs(1000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(labels == 1, visual == text)
    assert torch.equal(labels == 1, (visual == torch.arange(1000)) & (text == torch.arange(1000)))
    assert 0.45 < float(labels.mean()) < 0.55
    negatives = labels == 0
    swapped_visual = (visual != torch.arange(1000)) & negatives
    assert 0.4 < float(swapped_visual.sum() / negatives.sum()) < 0.6  # image or text, even odds


def test_itm_pairs_hard_negatives_replace_the_visual_side():
    hard = (torch.arange(8) + 3) % 8
    visual, text, labels = itm_pairs(8, generator=torch.Generator().manual_seed(2),
                                     negative_items=hard)
    assert torch.equal(text, torch.arange(8))
    assert torch.equal(visual, torch.where(labels == 1, torch.arange(8), hard))
    with pytest.raises(ValueError):
        itm_pairs(4, generator=torch.Generator(), negative_items=torch.arange(4))


def test_itm_loss_known_answers():
    assert itm_loss(torch.zeros(4), torch.tensor([1., 0., 1., 0.])).item() == pytest.approx(
        math.log(2))
    logits = torch.tensor([2.0, -1.0])
    expected = -(math.log(1 / (1 + math.exp(-2.0))) + math.log(1 - 1 / (1 + math.exp(1.0)))) / 2
    assert itm_loss(logits, torch.tensor([1., 0.])).item() == pytest.approx(expected, rel=1e-5)


def test_mlm_loss_counts_only_selected_positions():
    logits = torch.zeros(1, 3, 5)
    logits[0, 1, 2] = 10.0  # the selected position predicts its label confidently
    labels = torch.tensor([[IGNORE, 2, IGNORE]])
    expected = -math.log(math.exp(10) / (math.exp(10) + 4))
    assert mlm_loss(logits, labels).item() == pytest.approx(expected, abs=1e-6)
    labels = torch.tensor([[IGNORE, 3, IGNORE]])  # a wrong label: -log(1 / (e^10 + 4))
    assert mlm_loss(logits, labels).item() == pytest.approx(math.log(math.exp(10) + 4), rel=1e-5)


def test_mrfr_loss_is_the_l2_distance_on_masked_tokens():
    target = torch.randn(2, 4, 6)
    predicted = target.clone()
    masked = torch.zeros(2, 4, dtype=torch.bool)
    masked[0, 1] = masked[1, 3] = True
    offset = torch.zeros(6)
    offset[:2] = torch.tensor([3.0, 4.0])  # norm 5
    predicted[masked] += offset
    predicted[0, 0] += 100.0  # unmasked errors do not count
    assert mrfr_loss(predicted, target, masked).item() == pytest.approx(5.0)


def test_mrc_loss_is_the_kl_divergence_on_masked_tokens():
    target = torch.tensor([[[0.5, 0.5], [0.9, 0.1]]])
    logits = torch.log(torch.tensor([[[0.5, 0.5], [0.2, 0.8]]]))
    masked = torch.tensor([[True, False]])
    assert mrc_loss(logits, target, masked).item() == pytest.approx(0.0, abs=1e-6)
    masked = torch.tensor([[False, True]])
    kl = 0.9 * math.log(0.9 / 0.2) + 0.1 * math.log(0.1 / 0.8)
    assert mrc_loss(logits, target, masked).item() == pytest.approx(kl, rel=1e-5)


def test_soft_labels_are_distributions_peaking_on_the_closest_category():
    classes = torch.eye(3, 8)
    frames = torch.zeros(2, 8)
    frames[0, 1], frames[1, 2] = 1.0, 2.0
    labels = soft_labels(frames, classes, scale=20.0)
    assert torch.allclose(labels.sum(-1), torch.ones(2))
    assert labels.argmax(-1).tolist() == [1, 2]
