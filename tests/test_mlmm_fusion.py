"""MLMM re-ranking with fusion and validation-based selection: the fused score, the weight chosen
on validation captions only, shortlist hard negatives for fine-tuning and checkpoint selection."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mumur.recipes.mlmm_select import fit_on_validation, shortlist_mrr, validation_metric
from mumur.recipes.mlmm_shortlist import Shortlists, cross_scores, hard_negatives, query_subset
from mumur.rerank import MLMM, MLMMConfig, Reranker, fuse_scores, rerank_order
from mumur.rerank.fusion import load_fusion, select_fusion_weight, shortlist_r1, weight_for
from mumur.train.mlmm import MLMMStage, PairData, _batch, train_mlmm


def _tiny() -> MLMM:
    torch.manual_seed(0)
    return MLMM(MLMMConfig(vocab_size=30, frame_dim=8, hidden_size=16, layers=1, heads=2,
                           intermediate_size=32, max_frames=4, num_frames=4, max_text_len=10,
                           num_classes=5))


def test_fusion_weight_zero_is_the_two_stream_order_and_one_the_itm_order():
    rng = np.random.default_rng(0)
    base = np.sort(rng.normal(size=(30, 8)), axis=1)[:, ::-1]  # shortlists arrive best first
    cross = rng.normal(size=(30, 8))
    for row in range(30):
        assert rerank_order(fuse_scores(base[row], cross[row], 0.0)).tolist() == list(range(8))
        assert (rerank_order(fuse_scores(base[row], cross[row], 1.0)).tolist()
                == rerank_order(cross[row]).tolist())
    # scale-free: an affine change of either score leaves the fused order as it is
    fused = fuse_scores(base, cross, 0.3)
    moved = fuse_scores(5 * base + 2, 0.1 * cross - 7, 0.3)
    assert np.array_equal(np.argsort(-fused, axis=1), np.argsort(-moved, axis=1))
    assert np.allclose(fuse_scores(base, np.zeros_like(cross), 0.5), 0.5 * (
        (base - base.mean(1, keepdims=True)) / base.std(1, keepdims=True)))
    with pytest.raises(ValueError):
        fuse_scores(base, cross, 1.5)


def test_fusion_never_changes_the_candidate_set():
    rng = np.random.default_rng(1)
    for _ in range(50):
        k = int(rng.integers(1, 12))
        base, cross = rng.normal(size=k), rng.normal(size=k)
        order = rerank_order(fuse_scores(base, cross, float(rng.uniform())))
        assert sorted(order.tolist()) == list(range(k))


def test_shortlist_r1_and_mrr_known_answers():
    scores = np.array([[0.1, 0.9, 0.3], [0.5, 0.5, 0.1], [0.2, 0.1, 0.0]])
    hits = np.array([[False, True, False], [True, False, False], [False, False, False]])
    # query 0: own item best -> hit; query 1: tie at the top -> pessimistic miss; query 2: the
    # own item was not shortlisted -> miss
    assert shortlist_r1(scores, hits) == pytest.approx(100 / 3)
    assert shortlist_mrr(scores, hits) == pytest.approx((1 + 1 / 2 + 0) / 3)


def test_fusion_weight_is_chosen_on_validation_and_falls_back_to_two_stream():
    rng = np.random.default_rng(2)
    n, k = 200, 10
    base = np.sort(rng.normal(size=(n, k)), axis=1)[:, ::-1]
    own = rng.integers(0, k, size=n)
    hits = np.arange(k)[None, :] == own[:, None]
    informative = rng.normal(size=(n, k)) + 4.0 * hits  # the cross-encoder finds the own item
    w, curve = select_fusion_weight(base, informative, hits)
    assert w > 0 and curve[f"{w:g}"] > curve["0"]
    assert curve["0"] == pytest.approx(shortlist_r1(base, hits))
    # a cross-encoder that knows nothing (all equal) or is wrong leaves the two-stream order
    assert select_fusion_weight(base, np.zeros((n, k)), hits)[0] == 0.0
    assert select_fusion_weight(base, -10.0 * hits, hits)[0] == 0.0
    assert weight_for({10: 0.2, 50: 0.4, 100: 0.6}, 40) == 0.4
    assert weight_for({10: 0.2, 100: 0.6}, 12) == 0.2


def _shortlists(n_items=6, n=8, k=4, seed=0) -> Shortlists:
    rng = np.random.default_rng(seed)
    items = np.stack([rng.permutation(n_items)[:k] for _ in range(n)])
    own = np.where(rng.uniform(size=n) < 0.8, items[np.arange(n), rng.integers(0, k, n)],
                   n_items - 1)
    return Shortlists(texts=[f"caption {i}" for i in range(n)], languages=["en"] * n, own=own,
                      items=items, scores=np.sort(rng.normal(size=(n, k)), 1)[:, ::-1].copy(),
                      base_ranks=rng.integers(1, n_items + 1, n), n_items=n_items)


def _tokenizer_file(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<s>", "</s>", "<mask>", "caption"]
                                        + [str(i) for i in range(10)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    return path


def test_fit_on_validation_uses_only_the_validation_shortlists(tmp_path):
    model = _tiny().eval()
    tok = _tokenizer_file(tmp_path)
    frames = np.random.default_rng(3).normal(size=(6, 4, 8)).astype(np.float32)
    mask = np.ones((6, 4), bool)
    val = _shortlists()
    info = fit_on_validation(model, (val, frames, mask), tok, (2, 4), tmp_path,
                             source="world/val")
    # the written weights are exactly the grid choice on the validation captions' scores
    from mumur.recipes.mlmm_select import _scorer

    cross = cross_scores(_scorer(model, tok), val, frames, mask)
    for k in (2, 4):
        expected, _ = select_fusion_weight(val.scores[:, :k], cross[:, :k], val.hits[:, :k])
        assert load_fusion(tmp_path)[k] == expected == float(info["weights"][str(k)])
    saved = json.loads((tmp_path / "fusion.json").read_text())
    assert saved["selected_on"] == "world/val" and saved["n_captions"] == len(val.texts)
    # a re-ranker built with these weights uses them; the pure-ITM switch ignores them
    fused = Reranker(model, None, None, fusion=load_fusion(tmp_path))
    assert fused.weight(4) == load_fusion(tmp_path)[4]
    assert Reranker(model, None, None).weight(4) == 1.0
    # the checkpoint metric reads the first k columns of the same validation shortlists
    metric = validation_metric((val, frames, mask), tok, 2)
    assert metric(model) == pytest.approx(shortlist_mrr(cross[:, :2], val.hits[:, :2]))


def test_hard_negatives_are_the_shortlists_other_items_in_order():
    sl = _shortlists(n_items=9, n=20, k=6, seed=4)
    neg = hard_negatives(sl, 4).numpy()
    for row in range(20):
        expected = [i for i in sl.items[row] if i != sl.own[row]][:4]
        assert neg[row].tolist() == expected and sl.own[row] not in neg[row]
    with pytest.raises(ValueError):
        hard_negatives(sl, 6)
    assert query_subset(10, 0).tolist() == list(range(10))
    sub = query_subset(10, 4)
    assert len(sub) == 4 and np.array_equal(sub, np.sort(sub)) and np.array_equal(
        sub, query_subset(10, 4))


def _pair_data(n_items=10, captions_per_item=2) -> PairData:
    g = torch.Generator().manual_seed(0)
    m = n_items * captions_per_item
    ids = torch.randint(5, 30, (m, 6), generator=g)
    ids[:, 0], ids[:, -1] = 2, 3
    item = torch.arange(m) // captions_per_item
    negatives = torch.stack([(item + 1 + j) % n_items for j in range(3)], dim=1)  # own+1..+3
    return PairData(frames=torch.randn(n_items, 4, 8, generator=g),
                    frame_mask=torch.ones(n_items, 4, dtype=torch.bool), region_classes=None,
                    caption_ids=ids, caption_mask=torch.ones_like(ids, dtype=torch.bool),
                    caption_item=item, caption_negatives=negatives)


@pytest.mark.parametrize("hard_fraction", [1.0, 0.0])
def test_itm_negatives_come_from_the_captions_shortlist(hard_fraction):
    data, model = _pair_data(), _tiny()
    stage = MLMMStage(steps=1, batch_size=6, tasks={"itm": 1.0}, hard_negatives=3,
                      hard_fraction=hard_fraction)
    g = torch.Generator().manual_seed(1)
    frames_of = {tuple(f.flatten().tolist()[:3]): i for i, f in enumerate(data.frames)}
    seen_negative = 0
    for _ in range(20):
        batch = _batch(data, model, "itm", stage, g)
        captions = [next(c for c in range(len(data.caption_item))
                         if torch.equal(data.caption_ids[c, :batch["input_ids"].shape[1]], ids))
                    for ids in batch["input_ids"]]
        owns = [int(data.caption_item[c]) for c in captions]
        for row, label in enumerate(batch["itm_labels"].tolist()):
            vis = frames_of[tuple(batch["frames"][row].flatten().tolist()[:3])]
            if label == 1:
                assert vis == owns[row]
                continue
            seen_negative += 1
            if hard_fraction == 1.0:  # one of the caption's shortlisted other items
                assert vis in data.caption_negatives[captions[row]].tolist()
            else:  # §3.1.2's replacement: another item of the batch
                assert vis == owns[(row + 1) % len(owns)] and vis != owns[row]
    assert seen_negative > 10


def test_checkpoint_selection_keeps_the_best_validation_weights():
    data, model = _pair_data(), _tiny()
    stage = MLMMStage(steps=6, batch_size=4, lr=1e-2, tasks={"itm": 1.0}, eval_every=2,
                      log_every=100)
    script = iter([0.1, 0.3, 0.9, 0.2])  # steps 0, 2, 4, 6: step 4 is best
    snapshots = {}

    def validate(m):
        assert not m.training  # scored in eval mode
        score = next(script)
        snapshots[score] = {k: v.clone() for k, v in m.state_dict().items()}
        return score

    info = train_mlmm(model, data, stage, seed=0, validate=validate)
    assert info["selection"]["history"] == [[0, 0.1], [2, 0.3], [4, 0.9], [6, 0.2]]
    assert info["selection"]["best_step"] == 4
    for key, value in model.state_dict().items():
        assert torch.equal(value, snapshots[0.9][key])
    assert not torch.equal(model.itm_head.weight, snapshots[0.2]["itm_head.weight"])
    # without a callback (or eval_every 0) the final weights stay and nothing is selected
    assert "selection" not in train_mlmm(_tiny(), data, MLMMStage(
        steps=2, batch_size=4, tasks={"itm": 1.0}, eval_every=2), seed=0)


def test_finetune_selects_on_the_val_split_and_mines_negatives_on_train(tmp_path, monkeypatch):
    """`finetune` with a two-stream model: hard negatives from its train-split shortlists, the
    checkpoint metric and the fusion weights from its val-split shortlists; nothing else."""
    import mumur.recipes.mlmm as rm
    import mumur.recipes.mlmm_select as sel
    import mumur.recipes.mlmm_shortlist as ms
    from mumur.recipes.mlmm import MLMMRecipe

    frames, mask = np.zeros((6, 4, 8), np.float32), np.ones((6, 4), bool)
    made, calls, seen = {}, [], {}

    def fake_split(base_model, world, split, cache_root, k, *, per_language=0, workers=1):
        calls.append((split, k, per_language))
        made[split] = _shortlists(seed=len(calls))
        return made[split], frames, mask

    def fake_pair_data(recipe, world, split, cache, workers, hard, shortlist=None):
        seen["pairs"] = (split, shortlist, hard)
        return _pair_data(), 8, ""

    def fake_fit(model, val, tok, ks, folder, *, source):
        seen["fit"] = (val[0], tuple(ks), source)
        return {"weights": {}}

    def fake_metric(val, tok, k):
        seen["metric"] = (val[0], k)
        return lambda model: 0.0

    def fake_train(model, data, stage, *, seed, log_path, validate):
        seen["validate"] = validate
        return {"steps": stage.steps, "seconds": 0.0, "final": {}}

    monkeypatch.setattr(ms, "split_shortlists", fake_split)
    monkeypatch.setattr(sel, "fit_on_validation", fake_fit)
    monkeypatch.setattr(sel, "validation_metric", fake_metric)
    monkeypatch.setattr(rm, "_pair_data", fake_pair_data)
    monkeypatch.setattr(rm, "load_mlmm", lambda path: _tiny())
    monkeypatch.setattr(rm, "train_mlmm", fake_train)
    pretrained = tmp_path / "pre"
    pretrained.mkdir()
    (pretrained / "tokenizer.json").write_text(_tokenizer_file(tmp_path).read_text())
    recipe = MLMMRecipe(k=(10, 50), finetune={"steps": 2, "batch_size": 4, "tasks": {"itm": 1.0},
                                              "hard_negatives": 3},
                        train_queries_per_language=7, val_queries_per_language=5)
    out = rm.finetune(recipe, pretrained, tmp_path / "world", tmp_path / "cache",
                      tmp_path / "ft", seed=0, base_model=tmp_path / "dcm")
    assert calls == [("train", 4, 7), ("val", 50, 5)]  # never the test split
    assert seen["pairs"] == ("train", made["train"], 3)
    assert seen["metric"] == (made["val"], 10) and seen["validate"] is not None
    assert seen["fit"] == (made["val"], (10, 50), f"{tmp_path / 'world'}/val")
    assert json.loads((out / "training.json").read_text())["base_model"] == str(tmp_path / "dcm")


def test_shortlists_equal_the_full_outcomes_on_the_kept_captions():
    """`shortlists` scores only a per-language subset of captions; each kept caption's top K,
    scores and rank are exactly those of the full evaluation (`query_outcomes`)."""
    from test_eval_runner import FRAME_DIM, N_FRAMES, N_ITEMS, HashTextEncoder, RetrievalDataset

    from mumur.eval.outcomes import query_outcomes
    from mumur.eval.runner import encode_dataset_media
    from mumur.model import create_model
    from mumur.recipes.mlmm_shortlist import shortlists

    torch.manual_seed(0)
    model = create_model("mumur-dcm", text_en=HashTextEncoder(), embed_dim=8,
                         frame_dim=FRAME_DIM, num_frames=N_FRAMES).eval()
    rng = np.random.default_rng(1)
    items = rng.integers(0, N_ITEMS, size=30)
    captions = [(int(i), lang, f"caption {k} {lang} of item {i}")
                for k, i in enumerate(items) for lang in ("en", "de")]
    dataset = RetrievalDataset("toy", "test", [f"v{i}" for i in range(N_ITEMS)], captions)
    feats = rng.normal(size=(N_ITEMS, N_FRAMES, FRAME_DIM)).astype(np.float32)
    states = encode_dataset_media(model, dataset, frame_features=(
        feats, np.ones((N_ITEMS, N_FRAMES), bool)), progress=False)
    sl = shortlists(model, dataset, states, 4, per_language=7)
    assert len(sl.texts) == 14 and sl.items.shape == (14, 4) and sl.n_items == N_ITEMS
    for lang in ("en", "de"):
        full = query_outcomes(model, dataset, states, lang)
        texts, _ = dataset.captions_for(lang)
        keep = query_subset(len(texts), 7)
        rows = np.flatnonzero(np.asarray(sl.languages) == lang)
        assert [sl.texts[r] for r in rows] == [texts[i] for i in keep]
        np.testing.assert_array_equal(sl.own[rows], full.caption_item[keep])
        np.testing.assert_array_equal(sl.base_ranks[rows], full.ranks[keep])
        top = np.argsort(-full.scores[keep], axis=1, kind="stable")[:, :4]
        np.testing.assert_array_equal(sl.items[rows], top)
        np.testing.assert_allclose(sl.scores[rows], np.take_along_axis(full.scores[keep], top, 1),
                                   rtol=1e-5, atol=1e-6)
