"""MLMM's pre-training objectives (§3.1.2): masking, pair sampling and the four losses.

* ITM, eq. (1): binary cross-entropy of the <CLS> matching score; 50% of the pairs are negatives
  made by replacing the visual side or the text with another sample's (`itm_pairs`).
* MLM, eq. (2): BERT masking of 15% of the text tokens (80% <mask>, 10% a random token, 10% kept;
  `mask_tokens`), cross-entropy on the selected positions given the frames and the other words.
* MRFR, eq. (3): 15% of the visual tokens have their input replaced by zero vectors
  (`mask_frames`); the output at each masked token is regressed onto its input feature with the
  L2 distance (the norm, as eq. 3 writes it, not its square).
* MRC, eq. (4): KL(C~ || C^) between a soft label per masked visual token and the predicted
  category distribution. The paper's soft label is the detector's class distribution; ours is
  the frozen vision tower's zero-shot distribution over the world's categories (deviation,
  `soft_labels`).

Every function takes an explicit `torch.Generator`, so a seed fixes the masks and pairs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["OBJECTIVES", "itm_loss", "itm_pairs", "mask_frames", "mask_tokens", "mlm_loss",
           "mrc_loss", "mrfr_loss", "soft_labels"]

OBJECTIVES = ("itm", "mlm", "mrfr", "mrc")
IGNORE = -100  # label of positions MLM does not predict (torch's cross-entropy default)


def _at_least_one(chosen: torch.Tensor, allowed: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
    """Make every row with an allowed position choose at least one (UNITER does the same, so
    each sequence contributes to the loss)."""
    empty = ~chosen.any(dim=1) & allowed.any(dim=1)
    if empty.any():
        noise = torch.rand(allowed.shape, generator=generator).to(allowed.device)
        pick = noise.masked_fill(~allowed, -1.0).argmax(dim=1)  # (B,)
        rows = torch.nonzero(empty).flatten()
        chosen = chosen.clone()
        chosen[rows, pick[rows]] = True
    return chosen


def mask_tokens(input_ids: torch.Tensor, text_mask: torch.Tensor, *, vocab_size: int,
                mask_id: int, special_ids: tuple[int, ...], prob: float,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking for MLM (eq. 2).

    Args:
        input_ids: (B, L) token ids; text_mask: (B, L) bool, valid tokens.
        vocab_size: random replacements are drawn from [0, vocab_size) minus `special_ids`.
        mask_id: the <mask> token; special_ids: never selected (<s>, </s>, <pad>, ...).
        prob: selection rate (15%).
        generator: the randomness.

    Returns:
        (masked input ids (B, L), labels (B, L): the original id at selected positions,
        `IGNORE` elsewhere).
    """
    device = input_ids.device
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    for sid in special_ids:
        special |= input_ids == sid
    allowed = text_mask.bool() & ~special
    draw = torch.rand(input_ids.shape, generator=generator).to(device)
    chosen = _at_least_one((draw < prob) & allowed, allowed, generator)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
    action = torch.rand(input_ids.shape, generator=generator).to(device)
    replace_mask = chosen & (action < 0.8)  # 80%: <mask>
    replace_random = chosen & (action >= 0.8) & (action < 0.9)  # 10%: a random token; 10% kept
    ordinary = torch.tensor([i for i in range(vocab_size) if i not in set(special_ids)],
                            device=device)
    random_ids = ordinary[torch.randint(len(ordinary), input_ids.shape,
                                        generator=generator).to(device)]
    masked = torch.where(replace_mask, torch.full_like(input_ids, mask_id), input_ids)
    masked = torch.where(replace_random, random_ids, masked)
    return masked, labels


def mask_frames(frame_mask: torch.Tensor, *, prob: float,
                generator: torch.Generator) -> torch.Tensor:
    """The visual tokens MRFR / MRC mask (§3.1.2: 15% of the regions), at least one per item.

    Args:
        frame_mask: (B, T) bool, valid frames.

    Returns:
        (B, T) bool, True = masked (never a padding frame).
    """
    valid = frame_mask.bool()
    draw = torch.rand(valid.shape, generator=generator).to(valid.device)
    return _at_least_one((draw < prob) & valid, valid, generator)


def itm_pairs(batch_size: int, *, generator: torch.Generator,
              negative_items: torch.Tensor | None = None,
              negative_prob: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs for ITM (eq. 1): which visual row and which text row each pair takes.

    Row i of the batch is a matching (item i, caption i) pair. A negative (probability
    `negative_prob`, §3.1.2: 50%) replaces either the visual side or the text (even odds) with
    another row's; with `negative_items` the visual replacement is that row instead (a hard
    negative chosen by the caller) and the text is never replaced.

    Args:
        batch_size: B (at least 2).
        negative_items: (B,) int, a row index != i for every i, or None.

    Returns:
        (visual rows (B,), text rows (B,), labels (B,) float: 1 = matching).
    """
    if batch_size < 2:
        raise ValueError("ITM negatives need a batch of at least 2 pairs")
    rows = torch.arange(batch_size)
    negative = torch.rand(batch_size, generator=generator) < negative_prob
    other = (rows + torch.randint(1, batch_size, (batch_size,), generator=generator)) % batch_size
    if negative_items is not None:
        if bool((negative_items.cpu() == rows).any()):
            raise ValueError("a hard negative must be another row")
        visual = torch.where(negative, negative_items.cpu(), rows)
        return visual, rows, (~negative).float()
    swap_visual = torch.rand(batch_size, generator=generator) < 0.5
    visual = torch.where(negative & swap_visual, other, rows)
    text = torch.where(negative & ~swap_visual, other, rows)
    return visual, text, (~negative).float()


def itm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. (1): -E[y log f + (1 - y) log(1 - f)], f = sigmoid(logits). (B,), (B,) -> scalar."""
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. (2): -E[log P(W_m | R, W_\\m)] over the selected positions. (B, L, V), (B, L)."""
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE)


def mrfr_loss(predicted: torch.Tensor, target: torch.Tensor,
              masked: torch.Tensor) -> torch.Tensor:
    """Eq. (3): E ||R_m - F(R_m | R_\\m, W)||_2 over the masked visual tokens.

    Args:
        predicted: (B, T, Dv) regressed features; target: (B, T, Dv) input features;
        masked: (B, T) bool.
    """
    if not masked.any():
        raise ValueError("MRFR needs at least one masked visual token")
    diff = predicted.float()[masked] - target.float()[masked]  # (M, Dv)
    return diff.norm(dim=-1).mean()


def mrc_loss(logits: torch.Tensor, soft_target: torch.Tensor,
             masked: torch.Tensor) -> torch.Tensor:
    """Eq. (4): E KLD(C~(R_m) || C^(R_m | R_\\m, W)) over the masked visual tokens.

    Args:
        logits: (B, T, C) predicted category logits; soft_target: (B, T, C) distributions
            (rows sum to 1); masked: (B, T) bool.
    """
    if not masked.any():
        raise ValueError("MRC needs at least one masked visual token")
    log_pred = F.log_softmax(logits.float()[masked], dim=-1)  # (M, C)
    return F.kl_div(log_pred, soft_target.float()[masked], reduction="batchmean")


def soft_labels(frame_features: torch.Tensor, class_embeddings: torch.Tensor,
                scale: float) -> torch.Tensor:
    """MRC's soft labels: softmax over categories of `scale` x cosine(frame, category text).

    Args:
        frame_features: (..., Dv) frozen frame features; class_embeddings: (C, Dv) the frozen
            text tower's embeddings of the category names (same joint space).
        scale: the inverse temperature.

    Returns:
        (..., C) distributions.
    """
    cos = F.normalize(frame_features.float(), dim=-1) @ F.normalize(
        class_embeddings.float(), dim=-1).t()
    return (scale * cos).softmax(dim=-1)
