"""Method heads and losses: every registered head x temporal option, fast path, eq. (1)-(10)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mumur.errors import ConfigError
from mumur.heads import DCMHead, MeanPoolHead
from mumur.losses import ContrastiveLoss, symmetric_infonce
from mumur.heads.base import HeadInputs
from mumur.registry import HEADS as HEAD_REGISTRY

torch.set_num_threads(1)

# Heads scored by per-branch InfoNCE on frames alone. `leccr` reads per-item descriptions and
# trains with its own terms (L_ts, L_v, L_c, L_reg): the same properties (forward/backward,
# padding frames, frame order, fast path) are tested with its inputs in test_leccr.py.
HEADS = [name for name in HEAD_REGISTRY.names() if name != "leccr"]
TEMPORAL = ("none", "pos", "transformer")
DIMS = {"embed_dim": 16, "frame_dim": 12, "text_dim_en": 10, "text_dim_ml": 16,
        "temporal_heads": 2, "temporal_layers": 1, "max_frames": 16}
MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)


def make_head(name: str, seed: int = 0, **options):
    torch.manual_seed(seed)
    return HEAD_REGISTRY.get(name).from_config(**{**DIMS, **options})


def inputs(seed: int = 1, n_text: int = 4):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(3, 5, DIMS["frame_dim"], generator=g)  # (B, T, Dv)
    text_en = torch.randn(n_text, DIMS["text_dim_en"], generator=g)
    text_ml = torch.randn(n_text, DIMS["text_dim_ml"], generator=g)
    return frames, MASK.clone(), text_en, text_ml


def test_registry_has_both_heads():
    assert {"meanP", "mumur-dcm"} <= set(HEADS)



def pair(text_en, text_ml, ctx, mask) -> HeadInputs:
    """A batch of matching pairs as the head contract takes it (None drops a branch)."""
    text = {b: t for b, t in (("en", text_en), ("ml", text_ml)) if t is not None}
    return HeadInputs(ctx, mask, text=text)

@pytest.mark.parametrize("temporal", TEMPORAL)
@pytest.mark.parametrize("name", HEADS)
def test_forward_backward_shapes(name, temporal):
    head = make_head(name, temporal=temporal).train()
    frames, mask, text_en, text_ml = inputs(n_text=3)
    ctx = head.contextualize(frames, mask)
    assert ctx.shape == (3, 5, 16)
    t_en, t_ml = head.text_embed(text_en, "en"), head.text_embed(text_ml, "ml")
    assert t_en.shape == t_ml.shape == (3, 16)
    assert torch.allclose(t_en.norm(dim=-1), torch.ones(3), atol=1e-6)
    for branch, text in (("en", t_en), ("ml", t_ml)):
        sim = head.similarity(text, ctx, mask, branch)
        assert sim.shape == (3, 3) and sim.abs().max() <= 1 + 1e-5
        attn = head.attention(text, ctx, mask, branch)
        assert attn.shape == (3, 3, 5)
        assert torch.allclose(attn.sum(-1), torch.ones(3, 3), atol=1e-5)
        assert (attn[:, ~mask] == 0).all()
    assert head.pooled(ctx, mask).shape == (3, 16)
    out = head.loss(pair(t_en, t_ml, ctx, mask))
    assert torch.isfinite(out.loss) and torch.allclose(out.loss, out.loss_en + out.loss_ml)
    out.loss.backward()
    grads = {n: p.grad for n, p in head.named_parameters()}
    assert all(g is None or torch.isfinite(g).all() for g in grads.values())
    assert grads["criterion.logit_scale"].abs() > 0
    assert grads["frame_proj.weight"].abs().sum() > 0
    assert grads["text_proj.en.weight"].abs().sum() > 0
    assert grads["text_proj.ml.weight"].abs().sum() > 0
    if temporal != "none":
        assert grads["temporal.position"].abs().sum() > 0
    if name == "mumur-dcm":
        for branch in ("en", "ml"):
            assert grads[f"branches.{branch}.q_proj.weight"].abs().sum() > 0
            assert grads[f"branches.{branch}.fc.weight"].abs().sum() > 0


@pytest.mark.parametrize("temporal", TEMPORAL)
@pytest.mark.parametrize("name", HEADS)
def test_padding_frames_do_not_change_scores(name, temporal):
    head = make_head(name, temporal=temporal).eval()
    frames, mask, text_en, _ = inputs()
    text = head.text_embed(text_en, "en")
    ref = head.similarity(text, head.contextualize(frames, mask), mask, "en")
    ref_attn = head.attention(text, head.contextualize(frames, mask), mask, "en")
    # other values in the padding slots, and three more trailing padding frames
    noisy = torch.where(mask[..., None], frames, 100 * torch.randn_like(frames))
    longer = torch.cat([noisy, torch.randn(3, 3, DIMS["frame_dim"])], dim=1)
    long_mask = torch.cat([mask, torch.zeros(3, 3, dtype=torch.bool)], dim=1)
    ctx = head.contextualize(longer, long_mask)
    assert torch.allclose(head.similarity(text, ctx, long_mask, "en"), ref, atol=1e-5)
    attn = head.attention(text, ctx, long_mask, "en")
    assert torch.allclose(attn[..., :5], ref_attn, atol=1e-5)
    assert (attn[..., 5:] == 0).all()


@pytest.mark.parametrize("temporal", TEMPORAL)
@pytest.mark.parametrize("name", HEADS)
def test_frame_order(name, temporal):
    head = make_head(name, temporal=temporal).eval()
    frames, _, text_en, _ = inputs()
    mask = torch.ones(3, 5, dtype=torch.bool)
    text = head.text_embed(text_en, "en")
    perm = torch.tensor([3, 0, 4, 1, 2])
    ref = head.similarity(text, head.contextualize(frames, mask), mask, "en")
    shuffled = head.similarity(text, head.contextualize(frames[:, perm], mask), mask, "en")
    if temporal == "none":  # as published: a set of frames
        assert torch.allclose(shuffled, ref, atol=1e-5)
    else:
        assert not torch.allclose(shuffled, ref, atol=1e-4)


FAST_PATH_CASES = [(name, temporal, heads) for name in HEADS for temporal in TEMPORAL
                   for heads in ((1, 2) if name == "mumur-dcm" else (1,))]


@pytest.mark.parametrize("name,temporal,num_heads", FAST_PATH_CASES)
def test_fast_path_equals_similarity(name, temporal, num_heads):
    options = {"num_heads": num_heads} if name == "mumur-dcm" else {}
    head = make_head(name, temporal=temporal, **options).train()  # index_state ignores dropout
    frames, mask, text_en, text_ml = inputs(n_text=6)
    with torch.no_grad():
        ctx = head.contextualize(frames, mask)
        states = {b: head.index_state(ctx, mask, b) for b in ("en", "ml")}
        head.eval()
        for branch, feats in (("en", text_en), ("ml", text_ml)):
            text = head.text_embed(feats, branch)
            state = states[branch]
            if name == "mumur-dcm":
                assert set(state) == {"keys"} | {f"values_{h}" for h in range(num_heads)}
            assert all(v.shape == (3, 5, 16) for v in state.values())  # (B, T, *) each
            scores, attn = head.score_index_state(text, state, mask, branch)
            assert torch.allclose(scores, head.similarity(text, ctx, mask, branch), atol=1e-5)
            assert torch.allclose(attn, head.attention(text, ctx, mask, branch), atol=1e-5)


def _layer_norm(x, ln):
    mu, var = x.mean(), x.var(unbiased=False)
    return (x - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def _brute_force_rv(branch, t, frames, valid):
    """R_v of eq. (1)-(5) for one text and one item, written out with one head."""
    q = branch.q_proj.weight @ t + branch.q_proj.bias
    f = frames[valid]
    k = f @ branch.k_proj.weight.t() + branch.k_proj.bias
    v = f @ branch.v_proj.weight.t() + branch.v_proj.bias
    a = torch.softmax(k @ q / math.sqrt(t.shape[0]), dim=0)  # eq. (3)
    r = branch.out_proj.weight @ (a @ v) + branch.out_proj.bias  # eq. (1)
    return _layer_norm(branch.fc.weight @ r + branch.fc.bias + r, branch.norm)  # eq. (4)


@torch.no_grad()
def test_dcm_loss_known_answer_brute_force():
    head = make_head("mumur-dcm").eval()  # dropout off: deterministic
    with torch.no_grad():
        head.criterion.logit_scale.fill_(math.log(5.0))
    frames, mask, text_en, text_ml = inputs(n_text=3)
    ctx = head.contextualize(frames, mask)
    t = {"en": head.text_embed(text_en, "en"), "ml": head.text_embed(text_ml, "ml")}
    expected = {}
    for br in ("en", "ml"):
        s = torch.zeros(3, 3)
        for i in range(3):
            for j in range(3):
                rv = _brute_force_rv(head.branches[br], t[br][i], ctx[j], mask[j])
                s[i, j] = 5.0 * torch.dot(t[br][i], rv) / rv.norm()
        v2t = -sum(math.log(math.exp(s[i, i]) / sum(math.exp(s[i, j]) for j in range(3)))
                   for i in range(3)) / 3  # eq. (7) / (9)
        t2v = -sum(math.log(math.exp(s[i, i]) / sum(math.exp(s[j, i]) for j in range(3)))
                   for i in range(3)) / 3  # eq. (8) / (10)
        expected[br] = v2t + t2v
        assert torch.allclose(head.similarity(t[br], ctx, mask, br) * 5.0, s, atol=1e-5)
    out = head.loss(pair(t["en"], t["ml"], ctx, mask))
    assert out.loss_en.item() == pytest.approx(expected["en"], abs=1e-5)
    assert out.loss_ml.item() == pytest.approx(expected["ml"], abs=1e-5)
    assert out.loss.item() == pytest.approx(expected["en"] + expected["ml"], abs=1e-5)  # eq. (6)


def test_symmetric_infonce_known_answer():
    logits = torch.tensor([[2.0, 0.0], [1.0, 3.0]])
    rows = -(math.log(math.e**2 / (math.e**2 + 1)) + math.log(math.e**3 / (math.e + math.e**3))) / 2
    cols = -(math.log(math.e**2 / (math.e**2 + math.e)) + math.log(math.e**3 / (1 + math.e**3))) / 2
    assert symmetric_infonce(logits).item() == pytest.approx(rows + cols, abs=1e-6)
    with pytest.raises(ValueError, match="square"):
        symmetric_infonce(torch.zeros(2, 3))


def test_logit_scale_init_and_clamp():
    loss = ContrastiveLoss()
    assert loss.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        loss.logit_scale.fill_(math.log(1000.0))
    assert loss.scale().item() == pytest.approx(100.0)


@pytest.mark.parametrize("name", HEADS)
def test_english_only_training(name):
    head = make_head(name, train_branches=("en",))
    frames, mask, text_en, text_ml = inputs(n_text=3)
    ctx = head.contextualize(frames, mask)
    t_en, t_ml = head.text_embed(text_en, "en"), head.text_embed(text_ml, "ml")
    out = head.loss(pair(t_en, t_ml, ctx, mask))
    assert out.loss_ml is None and torch.equal(out.loss, out.loss_en)
    both = make_head(name).loss(pair(t_en, None, ctx, mask))  # a missing text also drops its branch
    assert both.loss_ml is None
    with pytest.raises(ValueError, match="no branch"):
        head.loss(pair(None, t_ml, ctx, mask))


def test_share_branches_ties_modules():
    shared = make_head("mumur-dcm", share_branches=True).eval()
    assert list(shared.branches) == ["shared"]
    frames, mask, text_en, _ = inputs()
    ctx = shared.contextualize(frames, mask)
    text = shared.text_embed(text_en, "en")
    assert torch.equal(shared.similarity(text, ctx, mask, "en"),
                       shared.similarity(text, ctx, mask, "ml"))
    separate = make_head("mumur-dcm").eval()
    assert not torch.allclose(separate.similarity(text, ctx, mask, "en"),
                              separate.similarity(text, ctx, mask, "ml"))


def test_meanp_identity_init_is_zero_shot_cosine():
    head = MeanPoolHead.from_config(embed_dim=12, frame_dim=12, text_dim_en=12, text_dim_ml=12)
    frames, mask, _, _ = inputs()
    text = torch.randn(4, 12)
    sim = head.similarity(head.text_embed(text, "en"), head.contextualize(frames, mask), mask, "en")
    pooled = torch.stack([F.normalize(frames[b][mask[b]], dim=-1).mean(0) for b in range(3)])
    assert torch.allclose(sim, F.normalize(text, dim=-1) @ F.normalize(pooled, dim=-1).t(),
                          atol=1e-6)


def test_dcm_text_scale_invariance():
    head = make_head("mumur-dcm").eval()
    frames, mask, _, _ = inputs()
    ctx = head.contextualize(frames, mask)
    text = torch.randn(4, 16)
    assert torch.allclose(head.similarity(text, ctx, mask, "en"),
                          head.similarity(7 * text, ctx, mask, "en"), atol=1e-6)


def test_config_errors():
    with pytest.raises(ConfigError, match="temporal"):
        DCMHead.from_config(temporal="lstm")
    with pytest.raises(ConfigError, match="num_heads"):
        DCMHead.from_config(embed_dim=16, num_heads=3)
    with pytest.raises(ConfigError, match="unknown option.*'heads'"):
        DCMHead.from_config(heads=2)
    with pytest.raises(ConfigError, match="train_branches"):
        DCMHead.from_config(train_branches=("fr",))
    with pytest.raises(ConfigError, match="dropout"):
        DCMHead.from_config(dropout=1.5)


def test_input_errors():
    head = make_head("mumur-dcm")
    frames, mask, text_en, _ = inputs()
    mask[1] = False
    with pytest.raises(ValueError, match=r"items \[1\] have no valid frame"):
        head.contextualize(frames, mask)
    with pytest.raises(ValueError, match="branch"):
        head.text_embed(text_en, "fr")
    with pytest.raises(ValueError, match="max_frames"):
        make_head("meanP", temporal="pos").contextualize(torch.randn(1, 17, 12),
                                                         torch.ones(1, 17, dtype=torch.bool))


def test_seq_transformer_structure():
    """CLIP4Clip seqTransf: out = Transformer(x + P) + x; zeroed blocks are the identity."""
    head = make_head("meanP", temporal="transformer")
    with torch.no_grad():
        for block in head.temporal.blocks:
            for layer in (block.attn.out_proj, block.mlp[2]):
                layer.weight.zero_()
                layer.bias.zero_()
    frames, mask, _, _ = inputs()
    x = head.frame_proj(F.normalize(frames, dim=-1))
    expected = 2 * x + head.temporal.position[:5]
    assert torch.allclose(head.contextualize(frames, mask), expected, atol=1e-6)


@pytest.mark.parametrize("temporal", TEMPORAL)
def test_dcm_branch_pooled_is_uniform_attention_output(temporal):
    head = make_head("mumur-dcm", temporal=temporal).eval()
    frames, mask, _, text_ml = inputs()
    ctx = head.contextualize(frames, mask)
    text = head.text_embed(text_ml, "ml")
    with torch.no_grad():  # zero queries: every frame gets the same attention weight
        head.branches["ml"].q_proj.weight.zero_()
        head.branches["ml"].q_proj.bias.zero_()
    expected = head.similarity(text, ctx, mask, "ml")
    assert torch.allclose(text @ head.pooled(ctx, mask, branch="ml").t(), expected, atol=1e-5)
    assert torch.allclose(head.pooled(ctx, mask), make_head("meanP").pooled(ctx, mask))
