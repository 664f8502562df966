"""The `leccr` head (LECCR, MM 2024): equations checked against direct computations, every
ablation switch trains, slots are per item and query-independent (the index path equals the
score), the model saves, loads and trains through `compute_loss`, and end to end through the
study engine on tiny worlds (slow)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from mumur.heads.base import HeadInputs
from mumur.heads.leccr import LECCRConfig, LECCRHead
from mumur.heads.slots import description_units

DIMS = dict(embed_dim=16, frame_dim=12, text_dim_en=10, text_dim_ml=10, num_heads=2,
            max_units=5)
SWITCHES = [{}, {"use_slots": False}, {"multi_level": False, "guidance": "none"},
            {"guidance": "none"}, {"guidance": "global"}, {"guidance": "local"},
            {"interaction": "co"}, {"interaction_direction": "v2c"},
            {"interaction_direction": "c2v"}, {"description_pooling": "cls"},
            {"description_pooling": "mean"}, {"description_pooling": "all"},
            {"description_encoder": "frozen"}, {"description_encoder": "separate"},
            {"num_slots": 1}, {"num_slots": 8}]


def _batch(b=6, t=3, u=4, seed=0, dt=10):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(b, t, 12, generator=g)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[0, 1:] = False  # an image: one frame
    dmask = torch.ones(b, u, dtype=torch.bool)
    dmask[1, 2:] = False
    extra = {"description_features": torch.randn(b, u, dt, generator=g), "description_mask": dmask}
    return frames, mask, extra, torch.randn(b, 10, generator=g), torch.randn(b, 10, generator=g)


def _head(**over):
    torch.manual_seed(0)
    return LECCRHead(LECCRConfig(**{**DIMS, **over}))


@pytest.mark.parametrize("over", SWITCHES, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items())
                         or "default")
def test_every_switch_trains_without_nan(over):
    head = _head(**over)
    frames, mask, extra, en, ml = _batch()
    ctx = head.contextualize(frames, mask, extra)
    smask = head.state_mask(mask)
    assert ctx.shape == (6, 3 + head.num_state_slots, 16) and smask.shape == ctx.shape[:2]
    out = head.loss(HeadInputs(ctx, smask, {"en": head.text_embed(en, "en"),
                                            "ml": head.text_embed(ml, "ml")}))
    assert torch.isfinite(out.loss) and set(out.terms) <= set(head.loss_names)
    out.loss.backward()
    grads = [p.grad for p in head.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert head.item_inputs == (() if over.get("use_slots") is False else ("descriptions",))
    expected = {"ts", "vs", "vt"} | (set() if over.get("use_slots") is False else (
        ({"c"} if over.get("multi_level", True) else set())
        | ({"reg"} if over.get("description_pooling", "slots") == "slots"
           and over.get("num_slots", 4) > 1 else set())))
    assert set(out.terms) == expected


def test_inference_score_is_eq25_and_the_index_path_equals_it():
    head = _head().eval()
    frames, mask, extra, _, ml = _batch()
    ctx, smask = head.contextualize(frames, mask, extra), head.state_mask(mask)
    text = head.text_embed(ml, "ml")
    z_hat, slots = ctx[:, :3], ctx[:, 3:]
    w = mask.unsqueeze(-1).float()
    h_v = F.normalize(head.visual_proj((z_hat * w).sum(1) / w.sum(1)), dim=-1)
    s_g = F.normalize(text, dim=-1) @ h_v.t()  # eq. 4 / 17
    s_l = torch.einsum("nd,bkd->nbk", F.normalize(text, dim=-1),
                       F.normalize(slots, dim=-1)).amax(-1)  # eq. 13
    want = 0.8 * s_g + 0.2 * s_l  # eq. 25, beta = 0.8
    got = head.similarity(text, ctx, smask, "ml")
    assert torch.allclose(got, want, atol=1e-6)
    state = head.index_state(ctx, smask, "ml")
    fast, attention = head.score_index_state(text, state, smask, "ml")
    assert torch.allclose(fast, got) and attention.shape == (6, 6, 3 + 4)
    assert torch.all(attention[..., 3:] == 0)  # timestamps come from frames, never slots
    assert torch.allclose(attention[..., :3].sum(-1), torch.ones(6, 6))
    no_mm = _head(multi_level=False).eval()
    no_mm.load_state_dict(head.state_dict())
    assert torch.allclose(no_mm.similarity(text, ctx, smask, "ml"), s_g, atol=1e-6)


def test_slots_are_per_item_and_query_independent():
    head = _head().eval()
    frames, mask, extra, _, _ = _batch()
    with torch.no_grad():
        whole = head.contextualize(frames, mask, extra)
        alone = torch.cat([head.contextualize(frames[i:i + 1], mask[i:i + 1],
                                              {k: v[i:i + 1] for k, v in extra.items()})
                           for i in range(6)])
        assert torch.allclose(whole, alone, atol=1e-5)  # no item sees another
        other = {**extra, "description_features": extra["description_features"].clone()}
        other["description_features"][2] += 1.0
        changed = head.contextualize(frames, mask, other)
    differs = (changed - whole).abs().amax(dim=(1, 2)) > 1e-6
    assert differs.tolist() == [i == 2 for i in range(6)]  # only item 2's state moves
    with pytest.raises(ValueError, match="description_features"):
        head.contextualize(frames, mask, None)


def test_losses_follow_eq4_eq12_and_eq22_23():
    head = _head(lambda_2=0.3, alpha=0.6)
    frames, mask, extra, en, ml = _batch()
    ctx, smask = head.contextualize(frames, mask, extra), head.state_mask(mask)
    h_s, h_t = head.text_embed(en, "en"), head.text_embed(ml, "ml")
    terms = head.loss_terms(HeadInputs(ctx, smask, {"en": h_s, "ml": h_t}))
    tau = head.config.tau
    s_ts = h_t @ h_s.t()

    def ctra(s):  # eq. 4, written out
        lp_r, lp_c = (s / tau).log_softmax(1), (s / tau).log_softmax(0)
        return -0.5 * (lp_r.diagonal().mean() + lp_c.diagonal().mean())

    assert torch.allclose(terms["ts"], ctra(s_ts), atol=1e-5)
    s_vs = head.global_score(h_s, ctx, smask)
    assert torch.allclose(terms["vs"], ctra(s_vs), atol=1e-5)
    s_vt = head.global_score(h_t, ctx, smask)
    y = ((0.6 * s_vs + 0.4 * head.local_score(h_s, ctx, smask)) / tau).softmax(1)  # eq. 19-20
    y_bar = (s_vt / tau).softmax(1)  # eq. 21
    rkt = (y * (y.log() - y_bar.log())).sum(1).mean()  # eq. 22
    assert torch.allclose(terms["vt"], 0.3 * ctra(s_vt) + 0.7 * rkt, atol=1e-5)  # eq. 23
    slots = ctx[:, 3:]
    gram = slots @ slots.transpose(1, 2)
    p = gram.softmax(-1).diagonal(dim1=1, dim2=2)
    assert torch.allclose(terms["reg"], -p.log().mean(), atol=1e-5)  # eq. 12
    total = head.loss(HeadInputs(ctx, smask, {"en": h_s, "ml": h_t})).loss  # eq. 24
    want = (terms["ts"] + 0.5 * (terms["vs"] + terms["vt"]) + 1.0 * terms["c"]
            + 0.1 * terms["reg"])
    assert torch.allclose(total, want, atol=1e-5)


@pytest.mark.parametrize("temporal", ["none", "pos"])
def test_padding_frames_and_frame_order(temporal):
    head = _head(temporal=temporal, temporal_heads=2, temporal_layers=1, max_frames=16).eval()
    frames, mask, extra, _, ml = _batch()
    text = head.text_embed(ml, "ml")
    ref = head.similarity(text, head.contextualize(frames, mask, extra), head.state_mask(mask),
                          "ml")
    noisy = torch.where(mask[..., None], frames, 100 * torch.randn_like(frames))
    longer = torch.cat([noisy, torch.randn(6, 2, 12)], dim=1)
    long_mask = torch.cat([mask, torch.zeros(6, 2, dtype=torch.bool)], dim=1)
    ctx = head.contextualize(longer, long_mask, extra)
    assert torch.allclose(head.similarity(text, ctx, head.state_mask(long_mask), "ml"), ref,
                          atol=1e-5)  # padding frames never count
    full = torch.ones(6, 3, dtype=torch.bool)
    perm = torch.tensor([2, 0, 1])
    a = head.similarity(text, head.contextualize(frames, full, extra), head.state_mask(full), "ml")
    b = head.similarity(text, head.contextualize(frames[:, perm], full, extra),
                        head.state_mask(full), "ml")
    assert torch.allclose(a, b, atol=1e-5) == (temporal == "none")  # a set of frames unless pos


def test_all_units_padding_never_wins_the_max():
    head = _head(description_pooling="all", max_units=6).eval()
    frames, mask, extra, _, _ = _batch(u=4)
    extra["description_mask"][3, 1:] = False  # item 3 has one unit
    ctx = head.contextualize(frames, mask, extra)
    assert ctx.shape[1] == 3 + 6
    slots = ctx[3, 3:]
    assert torch.allclose(slots[1:], slots[:1].expand(5, -1))  # padding repeats unit 0


def test_description_units_split_clauses():
    text = ("A video in two shots. From 0.0 s to 1.5 s: A video on the beach with one object. "
            "A large red circle moves left and beeps.")
    units = description_units(text)
    assert units == ["A video in two shots.", "From 0.0 s to 1.5 s:",
                     "A video on the beach with one object.",
                     "A large red circle moves left and beeps."]
    assert description_units(text, whole=True) == [text]
    assert len(description_units(text, max_units=2)) == 2


def test_model_trains_saves_and_loads(tmp_path, tiny_clip_checkpoint):
    from mumur.encoders import load_encoder
    from mumur.model import create_model, load_model

    text = load_encoder(str(tiny_clip_checkpoint[0]), modality="text")
    torch.manual_seed(0)
    model = create_model("leccr", text_en=text, text_ml=text, frame_dim=12, embed_dim=16,
                         num_heads=2, num_frames=3)
    frames, mask, extra, _, _ = _batch(dt=16)
    en = ["a red circle", "a blue star", "a cat", "snow", "a large square", "night"]
    batch = {"frame_features": frames, "mask": mask, "text_en": en, "text_ml": en, **extra}
    opt = torch.optim.Adam([p for p in model.head.parameters() if p.requires_grad], lr=1e-2)
    first = None
    for _ in range(15):
        out = model.compute_loss(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = first if first is not None else float(out.loss.detach())
    assert float(out.loss.detach()) < first  # it learns
    model.eval()
    folder = model.save(tmp_path / "m")
    assert json.loads((folder / "config.json").read_text())["config"]["head"] == "leccr"
    again = load_model(folder)
    assert again.identity() == model.identity()
    with torch.no_grad():
        q = model.encode_text(en[:2], "ml")
        a = model.score(q, model.head.contextualize(frames, mask, extra),
                        model.head.state_mask(mask), "ml")
        b = again.score(again.encode_text(en[:2], "ml"),
                        again.head.contextualize(frames, mask, extra),
                        again.head.state_mask(mask), "ml")
    assert torch.allclose(a, b, atol=1e-6) and not math.isnan(float(a.sum()))


@pytest.mark.slow
def test_leccr_study_on_tiny_worlds(tmp_path):
    """LECCR and its degraded-description variant through the study engine (train world ->
    cached features -> descriptions -> outcomes -> figures)."""
    from mumur.recipes.leccr import run_leccr

    fast = {"train": {"epochs": 2, "batch_size": 16, "num_workers": 0, "progress": False},
            "data": {"val_languages": ["en"]}}
    study = {
        "recipe": "world-leccr",
        "train_world": {"seed": 7, "videos": 40, "images": 8, "multi_shot": 0.5},
        "test_worlds": {"seeds": [2301], "videos": 16, "images": 4, "multi_shot": 0.5},
        "seeds": [0], "default": "leccr",
        "variants": {"leccr": {"patch": fast},
                     "degraded": {"patch": {**fast, "model": {"overrides": {
                         "description_source": "world-descriptions-degraded:share=1"}}}}}}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(study))
    report = tmp_path / "leccr.md"
    summary = run_leccr(tmp_path / "run", study=str(path), report=report, reference="degraded",
                        workers=1)
    text = report.read_text()
    assert "CCR view" in text and "| leccr |" in text and "perfect MLLM" in text
    diff = summary["ccr"]["leccr"]["vs_reference"]["R1"]
    assert diff["ci95"][0] <= diff["diff"] <= diff["ci95"][1]
    assert "vs_reference" not in summary["ccr"]["degraded"]
    assert json.loads(report.with_suffix(".json").read_text())["ccr"] == summary["ccr"]
    for name in ("leccr", "degraded"):
        en = summary["variants"][name]["video"]["languages"]["en"]["t2v"]
        assert 0 <= en["R1"] <= 100 and en["n_queries"] > 0
    run = json.loads((tmp_path / "run" / "runs" / "degraded" / "seed-0" / "run.json").read_text())
    assert run["recipe"]["model"]["overrides"]["description_source"].endswith("share=1")


def test_leccr_model_indexes_and_searches(tmp_path, tiny_clip_checkpoint):
    """The index stores each item's slots (described through the model's describer) and search
    scores with eq. 25 exactly as the model does."""
    from mumur.data.synthetic import SynthConfig, generate
    from mumur.describe import description_inputs
    from mumur.index import Index, build_index
    from mumur.model import create_model

    world = tmp_path / "world"
    generate(world, SynthConfig(videos=6, images=3, seed=5, multi_shot=0.5), workers=1,
             progress=False)
    folder = str(tiny_clip_checkpoint[0])
    torch.manual_seed(0)
    model = create_model("leccr", vision=folder, text_en=folder, text_ml=folder, num_frames=3,
                         embed_dim=16, num_heads=2).eval()
    saved = model.save(tmp_path / "model")
    report = build_index([world], tmp_path / "index", model=str(saved), num_workers=0,
                         progress=False)
    assert report.to_dict()["indexed"] == 9 and not report.skipped
    index = Index(tmp_path / "index")
    for exact in (False, True):
        top = index.search("a large red circle on the beach", k=3, exact=exact).results[0]
        media = model.encode_media([top.path], extra=description_inputs(model, [top.path]))
        want = model.score(model.encode_text(["a large red circle on the beach"], "en"),
                           media.frames_ctx, media.mask, "en").item()
        assert abs(top.score - want) < 1e-4, (exact, top.score, want)
