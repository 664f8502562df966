"""MLMM as a re-ranker: the single-stream model (named loss terms, cross-modal attention, save/load),
the re-ranking order, and that re-ranking never changes which items are candidates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import PaletteEmbedder

from mumur.index import Index
from mumur.rerank import (
    MLMM,
    OBJECTIVES,
    MLMMConfig,
    Reranker,
    load_mlmm,
    rerank_order,
    rerank_results,
    reranked_ranks,
)
from mumur.rerank.objectives import mask_frames, mask_tokens


def _tiny(**kw) -> MLMM:
    torch.manual_seed(0)
    cfg = MLMMConfig(vocab_size=30, frame_dim=8, hidden_size=16, layers=1, heads=2,
                     intermediate_size=32, max_frames=4, num_frames=4, max_text_len=10,
                     num_classes=5, **kw)
    return MLMM(cfg)


def _batch(b=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 30, (b, 7), generator=g)
    ids[:, 0], ids[:, -1] = 2, 3
    text_mask = torch.ones(b, 7, dtype=torch.bool)
    frames = torch.randn(b, 4, 8, generator=g)
    frame_mask = torch.ones(b, 4, dtype=torch.bool)
    frame_mask[0, 2:] = False
    mlm_ids, mlm_labels = mask_tokens(ids, text_mask, vocab_size=30, mask_id=4,
                                      special_ids=(0, 1, 2, 3, 4), prob=0.15, generator=g)
    return {"input_ids": ids, "text_mask": text_mask, "frames": frames, "frame_mask": frame_mask,
            "itm_labels": (torch.arange(b) % 2).float(), "mlm_input_ids": mlm_ids,
            "mlm_labels": mlm_labels,
            "masked_frames": mask_frames(frame_mask, prob=0.15, generator=g),
            "region_classes": torch.softmax(torch.randn(b, 4, 5, generator=g), -1)}


def test_every_objective_is_a_named_finite_loss_term_with_gradients():
    model = _tiny(loss_weights={"mrfr": 0.5})
    batch = _batch()
    for name in OBJECTIVES:
        model.zero_grad()
        out = model.loss(batch, (name,))
        assert list(out.terms) == [name] and torch.isfinite(out.loss)
        out.loss.backward()
        assert model.itm_head.weight.grad is not None or name != "itm"
    both = model.loss(batch, ("itm", "mrfr"))
    assert both.loss.item() == pytest.approx(
        both.terms["itm"].item() + 0.5 * both.terms["mrfr"].item(), rel=1e-5)
    with pytest.raises(Exception, match="unknown objective"):
        _tiny(loss_weights={"contrastive": 1.0})


def test_single_stream_text_attends_to_frames_and_padding_is_ignored():
    model = _tiny().eval()
    b = _batch()
    out = model(b["input_ids"], b["text_mask"], b["frames"], b["frame_mask"])
    other = model(b["input_ids"], b["text_mask"], b["frames"].flip(0), b["frame_mask"].flip(0))
    assert not torch.allclose(out.cls, other.cls)  # the text's <CLS> sees the frames
    padded = b["frames"].clone()
    padded[0, 2:] = 99.0  # padding frames of item 0 change nothing
    again = model(b["input_ids"], b["text_mask"], padded, b["frame_mask"])
    assert torch.allclose(out.cls[0], again.cls[0], atol=1e-5)


def test_masked_frames_enter_as_zero_vectors():
    model = _tiny().eval()
    b = _batch()
    masked = torch.zeros(6, 4, dtype=torch.bool)
    masked[:, 1] = True
    changed = b["frames"].clone()
    changed[:, 1] = torch.randn(6, 8)  # the masked frame's content is invisible
    a = model(b["input_ids"], b["text_mask"], b["frames"], b["frame_mask"], masked)
    c = model(b["input_ids"], b["text_mask"], changed, b["frame_mask"], masked)
    assert torch.allclose(a.cls, c.cls, atol=1e-5)


def test_save_load_round_trip(tmp_path):
    model = _tiny().eval()
    tok = tmp_path / "tokenizer.json"
    tok.write_text("{}")
    b = _batch()
    before = model.itm_logits(b["input_ids"], b["text_mask"], b["frames"], b["frame_mask"])
    model.save(tmp_path / "m", tok)
    loaded = load_mlmm(tmp_path / "m")
    after = loaded.itm_logits(b["input_ids"], b["text_mask"], b["frames"], b["frame_mask"])
    assert loaded.config == model.config
    assert torch.equal(before, after)
    assert (tmp_path / "m" / "tokenizer.json").read_text() == "{}"
    assert not list((tmp_path / "m").glob("*.pt*")) and not list((tmp_path / "m").glob("*.bin"))


def test_rerank_order_is_best_first_and_stable_on_ties():
    assert rerank_order(np.array([0.1, 0.9, 0.5, 0.9])).tolist() == [1, 3, 2, 0]


def test_reranked_ranks_known_answers():
    shortlist = np.array([[0, 1, 2, 3], [5, 6, 7, 8], [0, 1, 2, 3]])
    cross = np.array([[0.1, 0.2, 0.9, 0.0], [1.0, 1.0, 1.0, 1.0], [0.5, 0.1, 0.2, 0.3]])
    own = np.array([2, 6, 9])
    base = np.array([3, 2, 7])
    # query 0: own item 2 scores best -> 1; query 1: four-way tie -> pessimistic rank 4 within
    # k=4; query 2: own item outside the shortlist keeps its two-stream rank
    assert reranked_ranks(base, shortlist, cross, own, 4).tolist() == [1, 4, 7]
    # k=2: item 2 of query 0 is outside the first two -> its rank stays, and never below k + 1
    assert reranked_ranks(np.array([2, 2, 7]), shortlist, cross, own, 2).tolist() == [3, 2, 7]


class _ByName:
    """A stand-in cross-encoder: scores items whose file name holds `prefer` highest."""

    def __init__(self, prefer: str):
        self.prefer, self.seen = prefer, []

    def weight(self, k):  # the ITM score alone (no fusion)
        return 1.0

    def score(self, query, paths):
        self.seen.append(list(paths))
        return np.array([1.0 if self.prefer in str(p) else 0.0 for p in paths])


@pytest.mark.parametrize("rerank_k", [3, 5])
def test_search_rerank_reorders_only_the_two_stream_shortlist(palette_index_dir, rerank_k):
    idx = Index(palette_index_dir, embedder=PaletteEmbedder())
    try:
        plain = idx.search("green", k=12)
        fake = _ByName("blue")
        ranked = idx.search("green", k=12, rerank=fake, rerank_k=rerank_k)
    finally:
        idx.close()
    ids = [r.id for r in plain.results]
    got = [r.id for r in ranked.results]
    assert len(ids) > rerank_k + 2
    # the re-ranker saw exactly the two-stream top K, and the top K is a permutation of it
    assert len(fake.seen) == 1 and len(fake.seen[0]) == rerank_k
    assert sorted(got[:rerank_k]) == sorted(ids[:rerank_k])
    assert got[rerank_k:] == ids[rerank_k:]  # everything after K keeps its place
    scores = [r.rerank_score for r in ranked.results[:rerank_k]]
    assert scores == sorted(scores, reverse=True)
    assert all(r.rerank_score is None for r in ranked.results[rerank_k:])
    blue_in_short = [r for r in plain.results[:rerank_k] if "blue" in r.path]
    assert [r.id for r in ranked.results[:len(blue_in_short)]] == [r.id for r in blue_in_short]
    assert ranked.rerank_k == rerank_k and ranked.mode.endswith("+rerank")


def test_rerank_results_keeps_the_candidate_set_for_any_scores():
    import dataclasses

    rng = np.random.default_rng(0)
    Hit = dataclasses.make_dataclass("Hit", [("id", int), ("score", float),
                                             ("rerank_score", object, None)])
    hits = [Hit(i, 1.0 - 0.01 * i) for i in range(20)]
    for trial in range(40):
        k = int(rng.integers(1, 20))
        w = [0.0, 1.0, float(rng.uniform())][trial % 3]  # two-stream, pure ITM, fused

        class Random:
            def weight(self, k):
                return w

            def score(self, query, paths):
                return rng.normal(size=len(paths))

        out = rerank_results(Random(), "q", hits, k, lambda h: f"/x/{h.id}")
        assert sorted(h.id for h in out[:k]) == list(range(k))
        assert [h.id for h in out[k:]] == list(range(k, 20))
        if w == 0.0:  # fusion weight 0 is the two-stream order itself
            assert [h.id for h in out] == list(range(20))


def test_reranker_scores_with_the_itm_head_and_reads_each_item_once():
    model = _tiny().eval()
    calls = []
    rows = {f"v{i}": (np.random.default_rng(i).normal(size=(4, 8)).astype(np.float32),
                      np.ones(4, bool)) for i in range(5)}

    def frame_rows(paths):
        calls.append(list(paths))
        return (np.stack([rows[p][0] for p in paths]), np.stack([rows[p][1] for p in paths]))

    def tokenizer(texts):
        ids = torch.tensor([[2, 7, 9, 3]] * len(texts))
        return ids, torch.ones_like(ids, dtype=torch.bool)

    rr = Reranker(model, tokenizer, frame_rows, batch_size=2)
    scores = rr.score("q", ["v0", "v3", "v1"])
    again = rr.score("q", ["v3", "v4"])
    assert calls == [["v0", "v3", "v1"], ["v4"]]  # stored rows are read once
    ids, valid = tokenizer(["q"] * 3)
    feats = torch.from_numpy(np.stack([rows[p][0] for p in ["v0", "v3", "v1"]]))
    expected = model.itm_logits(ids, valid, feats, torch.ones(3, 4, dtype=torch.bool))
    assert np.allclose(scores, expected.detach().numpy(), atol=1e-5)
    assert again[0] == pytest.approx(scores[1], abs=1e-5)


def test_rerank_summary_reports_gains_with_intervals_per_language_and_k():
    from mumur.recipes.mlmm import MLMMRecipe
    from mumur.recipes.mlmm_report import _summary, rerank_markdown

    rng = np.random.default_rng(0)
    recipe = MLMMRecipe(seeds=(0, 1), k=(2, 5))
    runs = []
    for _ in recipe.seeds:
        run = {"n_items": np.array([20])}
        for lang in ("en", "de"):
            base = rng.integers(1, 21, size=50)
            run[f"{lang}/base"] = base
            run[f"{lang}/k2"] = np.where(base <= 2, 1, base)  # re-ranking lifts the top 2
            run[f"{lang}/k5"] = np.where(base <= 5, 1, base)
            run[f"{lang}/itm-k2"] = np.where(base <= 2, 2, base)  # ITM alone: a loss at top 1
            run[f"{lang}/itm-k5"] = np.where(base <= 5, 5, base)
        runs.append(run)
    latency = {"median_ms": {"two-stream": 2.0, "2": 3.0, "5": 5.0, "all": 20.0}, "gallery": 20,
               "queries": 4, "added_ms": {"2": 1.0, "5": 3.0, "all": 18.0},
               "ratio": {"2": 1.5, "5": 2.5, "all": 10.0}}
    stage = {"batch_size": 4}
    training = {"pretrain": {"steps": 3, "seconds": 1.0, "final": {}, "stage": stage},
                **{str(s): {"seconds": 1.0, "steps": 3, "final": {"itm": 0.5}, "stage": stage,
                            "fusion": {"weights": {"2": 0.25, "5": 0.5}},
                            "selection": {"best_step": 2, "best": 0.4,
                                          "history": [[0, 0.3], [2, 0.4]]}}
                   for s in recipe.seeds}}
    summary = _summary(recipe, runs, latency, training)
    for lang in ("en", "de"):
        base = [r[f"{lang}/base"] for r in runs]
        expected = np.mean([100 * np.mean(b <= 5) - 100 * np.mean(b == 1) for b in base])
        gain = summary["results"]["k5"][lang]["gain_R1"]
        assert gain["diff"] == pytest.approx(expected, abs=1e-3)
        assert gain["ci95"][0] <= gain["diff"] <= gain["ci95"][1]
        assert summary["results"]["k2"][lang]["gain_R1"]["diff"] <= gain["diff"]
        itm = summary["results"]["itm-k5"][lang]["gain_R1"]
        assert itm["diff"] == pytest.approx(-np.mean([100 * np.mean(b == 1) for b in base]),
                                            abs=1e-3)
    text = rerank_markdown(summary, "mumur mlmm study ...")
    assert "| 5 |" in text and "single-stream only" in text and "10.0" in text
    assert "| 0.5/0.5 |" in text and "ITM only" in text and "step 2" in text


def test_http_search_rerank_k_reorders_the_shortlist_and_needs_a_reranker(served):
    client, resources = served
    reply = client.get("/api/search", params={"q": "green", "k": 12, "rerank_k": 3})
    assert reply.status_code == 409 and "--rerank" in reply.json()["error"]
    plain = client.get("/api/search", params={"q": "green", "k": 12}).json()
    resources.reranker = _ByName("blue")
    body = client.get("/api/search", params={"q": "green", "k": 12, "rerank_k": 3}).json()
    ids = [r["id"] for r in plain["results"]]
    got = [r["id"] for r in body["results"]]
    assert sorted(got[:3]) == sorted(ids[:3]) and got[3:] == ids[3:]
    assert body["rerank_k"] == 3 and body["mode"] == "two-stage+rerank"
    assert all(r["rerank_score"] is not None for r in body["results"][:3])
    assert plain["rerank_k"] == 0 and plain["results"][0]["rerank_score"] is None


def test_init_from_student_reproduces_the_students_bert_on_text_alone():
    """MLMM started from the packaged M-CLIP student (§3.1.4's XLM-R start): with every visual
    token padded out, its text states are the student BERT's (q/k/v order, LayerNorms, GELU)."""
    import json
    from pathlib import Path

    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    from mumur.encoders import packaged_checkpoint
    from mumur.errors import ConfigError
    from mumur.recipes.mlmm import init_from_student

    folder = Path(packaged_checkpoint("world-m-clip"))
    bert_cfg = json.loads((folder / "config.json").read_text())["transformerConfig"]
    bert = BertModel(BertConfig(**{k: v for k, v in bert_cfg.items() if not k.startswith("_")}),
                     add_pooling_layer=False).eval()
    weights = load_file(str(folder / "model.safetensors"))
    bert.load_state_dict({k[len("transformer."):]: v for k, v in weights.items()
                          if k.startswith("transformer.") and "pooler" not in k})
    model = MLMM(MLMMConfig(vocab_size=4000, frame_dim=192, hidden_size=128, layers=2, heads=4,
                            intermediate_size=512, max_text_len=40)).eval()
    init_from_student(model, folder)
    ids = torch.tensor([[2, 25, 28, 109, 13, 402, 3, 0], [2, 3136, 475, 43, 42, 18, 3, 0]])
    valid = ids != 0
    frames = torch.randn(2, 12, 192)
    with torch.no_grad():
        ours = model(ids, valid, frames, torch.zeros(2, 12, dtype=torch.bool)).text
        theirs = bert(input_ids=ids, attention_mask=valid.long()).last_hidden_state
    # equal up to LayerNorm eps (PyTorch's 1e-5 here, BERT's 1e-12): the mapping is exact
    assert torch.allclose(ours[valid], theirs[valid], atol=1e-2)
    assert not torch.allclose(ours[valid], theirs[valid].roll(1, dims=-1), atol=1e-1)
    small = MLMM(MLMMConfig(vocab_size=4000, frame_dim=192, hidden_size=64, heads=4))
    with pytest.raises(ConfigError, match="does not fit"):
        init_from_student(small, folder)


def test_cli_table_shows_rerank_scores_and_time(palette_index_dir):
    from mumur.cli.cmd_search import format_results

    idx = Index(palette_index_dir, embedder=PaletteEmbedder())
    try:
        text = format_results(idx.search("green", k=4, rerank=_ByName("blue"), rerank_k=2))
        plain = format_results(idx.search("green", k=4))
    finally:
        idx.close()
    assert text.count("rerank=") == 2 and "top 2 re-ranked in" in text
    assert "rerank=" not in plain and "re-ranked" not in plain


def test_reranker_refuses_features_of_another_vision_tower(tmp_path):
    from pathlib import Path

    from mumur.encoders import packaged_checkpoint
    from mumur.errors import ConfigError
    from mumur.rerank import load_reranker

    model = _tiny(vision_identity="clip-vision:world-clip@000000000000")
    model.save(tmp_path / "m", Path(packaged_checkpoint("world-m-clip")) / "tokenizer.json")
    with pytest.raises(ConfigError, match="fine-tune it again"):
        load_reranker(tmp_path / "m", tmp_path / "features")
