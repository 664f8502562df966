"""Exact DCM in one pass over the keys (heads/dcm_fast.py, index/scoring.py) and the FAISS first
stage chosen per index (index/ann.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_search import _dcm_engine

from mumur.errors import ConfigError
from mumur.heads.dcm import DCMConfig, DCMHead
from mumur.index import Index, build_index
from mumur.index.ann import ANN_META_KEY, AnnSpec
from mumur.index.scoring import BlockScorer
from mumur.index.search import SearchEngine


def _head(heads: int, dim: int = 32, seed: int = 0) -> DCMHead:
    torch.manual_seed(seed)
    head = DCMHead(DCMConfig(embed_dim=dim, frame_dim=dim, text_dim_en=dim, text_dim_ml=dim,
                             num_heads=heads)).eval()
    for branch in head.branches.values():  # a trained LayerNorm is not (1, 0)
        torch.nn.init.normal_(branch.norm.weight, 1.0, 0.3)
        torch.nn.init.normal_(branch.norm.bias, 0.0, 0.3)
    return head


@pytest.mark.parametrize("heads", [1, 4])
def test_one_pass_scores_equal_the_folded_scores_and_similarity(heads):
    head = _head(heads)
    frames = torch.randn(9, 6, 32)
    mask = torch.ones(9, 6, dtype=torch.bool)
    mask[2, 3:] = False
    mask[5, 1:] = False
    text = torch.randn(3, 32)
    with torch.no_grad():
        ctx = head.contextualize(frames, mask)
        state = head.index_state(ctx, mask, "ml")
        ref, ref_att = head.score_index_state(text, state, mask, "ml")
        sim = head.similarity(text, ctx, mask, "ml")
        compact = head.compact_index_state(state, "ml")
        got, att = head.compact_scorer(text, "ml")(compact, mask)
        half = head.compact_index_state({k: v.half() for k, v in state.items()}, "ml")
        got16, _ = head.compact_scorer(text, "ml")(half, mask)
    assert set(compact) == {"keys", "gram", "gram_gamma", "beta_proj"}
    assert compact["gram"].shape == (9, heads * 6, heads * 6)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(got, sim, atol=1e-5, rtol=0)
    torch.testing.assert_close(att, ref_att, atol=1e-6, rtol=0)
    assert half["keys"].dtype == torch.float16
    assert (got16 - ref).abs().max() < 2e-3  # float16 keys: the storage's own rounding
    assert (got16 - ref).abs().max() > 0  # and it did run in float16


def test_one_pass_scores_change_with_the_layernorm():
    """The Gram terms are not decorative: scoring with another LayerNorm's gamma/beta than the
    one folded in gives other scores."""
    head = _head(1)
    frames, mask = torch.randn(5, 4, 32), torch.ones(5, 4, dtype=torch.bool)
    text = torch.randn(2, 32)
    with torch.no_grad():
        state = head.index_state(head.contextualize(frames, mask), mask, "ml")
        compact = head.compact_index_state(state, "ml")
        before, _ = head.compact_scorer(text, "ml")(compact, mask)
        head.branch_module("ml").norm.weight.mul_(torch.linspace(0.5, 2.0, 32))
        ref, _ = head.score_index_state(text, state, mask, "ml")
        stale, _ = head.compact_scorer(text, "ml")(compact, mask)
        fresh, _ = head.compact_scorer(text, "ml")(head.compact_index_state(state, "ml"), mask)
    assert (before - ref).abs().max() > 1e-3
    torch.testing.assert_close(fresh, ref, atol=1e-5, rtol=0)
    assert (stale - ref).abs().max() > 1e-4  # the Grams carry gamma


def _block_scorer(engine, head, block_items, threads):
    parts = dict(zip(["keys", "values_0"], torch.from_numpy(engine.arrays.state).split(16, -1)))
    with torch.no_grad():
        compact = head.compact_index_state(parts, "ml")
    return BlockScorer(compact, engine.arrays.mask, lambda q: head.compact_scorer(q, "ml"),
                       block_items=block_items, threads=threads)


@pytest.mark.parametrize("block_items,threads", [(4096, 1), (7, 1), (7, 3)])
def test_engine_with_a_block_scorer_gives_the_reference_results(block_items, threads):
    engine, head, _, _ = _dcm_engine(n=300, topic_noise=1.0)
    scorer = _block_scorer(engine, head, block_items, threads)
    fast = SearchEngine(engine.arrays, None, shortlist=64, scorer=scorer)
    rng = np.random.default_rng(3)
    for _ in range(4):
        q = rng.standard_normal(16).astype(np.float32)
        q /= np.linalg.norm(q)
        for exact in (True, False):
            want, _ = engine.search(q, k=10, exact=exact)
            got, _ = fast.search(q, k=10, exact=exact)
            assert [r.id for r in got] == [r.id for r in want]
            np.testing.assert_allclose([r.score for r in got], [r.score for r in want],
                                       atol=1e-5)
            assert [r.timestamp for r in got] == [r.timestamp for r in want]
            assert [r.relevant for r in got] == [r.relevant for r in want]
    scores, attention = scorer(np.ones((2, 16), np.float32), None)
    assert scores.shape == (2, 300) and attention.shape == (2, 300, 4)
    with pytest.raises(ValueError, match="score_fn or a scorer"):
        SearchEngine(engine.arrays, None)


def test_index_on_a_dcm_model_scores_through_the_compact_arrays(
        tiny_mumur_model, palette_corpus, tmp_path):
    index = tmp_path / "index"
    build_index([palette_corpus], index, str(tiny_mumur_model), num_workers=0, progress=False,
                fp16=True)
    idx = Index(index)
    fast = idx.search("a red square", k=5, exact=True)
    engine = idx.engine(fast.branch)
    assert engine.scorer is not None and idx._arrays.state.shape[-1] == 0  # states dropped
    # The reference: the stored float16 states scored by `score_index_state`.
    arrays = idx.store.load_arrays()
    reference = SearchEngine(arrays, lambda q, s, m: idx.embedder.score(q, s, m, fast.branch))
    vector = idx.embedder.encode_queries(["a red square"], fast.branch)[0]
    want, _ = reference.search(vector, k=5, exact=True)
    assert [r.id for r in fast.results] == [r.id for r in want]
    np.testing.assert_allclose([r.score for r in fast.results], [r.score for r in want],
                               atol=2e-3)
    idx.close()


# ---- ANN first stage -------------------------------------------------------------------------

def test_ann_spec_round_trips_and_refuses_what_faiss_cannot_build():
    spec = AnnSpec("IVF16,Flat", "nprobe=4", min_items=10)
    assert AnnSpec.from_json(spec.to_json()) == spec and AnnSpec.from_json("") is None
    spec.check()
    with pytest.raises(ConfigError):
        AnnSpec("NotAFactory,Flat").check()
    with pytest.raises(ConfigError):
        AnnSpec("HNSW8,Flat", "nprobe=3").check()  # HNSW has no nprobe
    with pytest.raises(ConfigError):
        AnnSpec("")


@pytest.mark.parametrize("spec", [AnnSpec("HNSW16,Flat", "efSearch=400"),
                                  AnnSpec("IVF8,Flat", "nprobe=8"),
                                  AnnSpec("IVF8,PQ8x4fs,RFlat", "nprobe=8,k_factor_rf=64")])
def test_ann_stage1_searching_everything_equals_the_exact_stage1(spec):
    engine, _, _, _ = _dcm_engine(n=600, topic_noise=1.0, shortlist=20)
    ann = SearchEngine(engine.arrays, engine.score_fn, shortlist=20, ann=spec)
    assert ann.ann == spec and ann.stage1_bytes() > 0
    rng = np.random.default_rng(5)
    for _ in range(5):
        q = rng.standard_normal(16).astype(np.float32)
        q /= np.linalg.norm(q)
        want = engine._stage1(q, None, 20)
        got = ann._stage1(q, None, 20)
        assert set(got.tolist()) == set(want.tolist())
    small = SearchEngine(engine.arrays, engine.score_fn, ann=AnnSpec("HNSW16,Flat",
                                                                     min_items=10_000))
    assert small.ann is None  # below min_items stage 1 stays exact


def test_an_approximate_stage1_loses_only_what_it_does_not_shortlist():
    """IVF with one probe of 32 lists sees a fraction of the items: stage 1 then misses true
    neighbours (this is what recall measures), and stage 2 still scores what it found exactly."""
    engine, _, _, _ = _dcm_engine(n=600, topic_noise=1.0, shortlist=20)
    ann = SearchEngine(engine.arrays, engine.score_fn, shortlist=20,
                       ann=AnnSpec("IVF32,Flat", "nprobe=1"))
    rng = np.random.default_rng(6)
    overlap = []
    for _ in range(10):
        q = rng.standard_normal(16).astype(np.float32)
        q /= np.linalg.norm(q)
        overlap.append(len(set(ann._stage1(q, None, 20)) & set(engine._stage1(q, None, 20))))
        got, _ = ann.search(q, k=5)
        exact_scores = dict(zip(*[[r.id for r in engine.search(q, k=600, exact=True)[0]],
                                  [r.score for r in engine.search(q, k=600, exact=True)[0]]]))
        for r in got:
            assert abs(r.score - exact_scores[r.id]) < 1e-5
    assert np.mean(overlap) < 19


def test_mumur_index_records_the_ann_spec_and_search_uses_it(palette_corpus, tmp_path):
    from conftest import PaletteEmbedder

    index = tmp_path / "index"
    spec = AnnSpec("HNSW8,Flat", "efSearch=64")
    build_index([palette_corpus], index, embedder=PaletteEmbedder(), num_workers=0,
                progress=False, ann=spec)
    idx = Index(index, embedder=PaletteEmbedder())
    assert AnnSpec.from_json(idx.store.meta()[ANN_META_KEY]) == spec
    assert idx.search("red", k=3).results and idx.engine().ann == spec
    idx.close()
    build_index([palette_corpus], index, embedder=PaletteEmbedder(), num_workers=0,
                progress=False, ann=AnnSpec("exact"))
    idx = Index(index, embedder=PaletteEmbedder())
    assert idx.engine().ann is None
    idx.close()
    with pytest.raises(ConfigError):
        build_index([palette_corpus], tmp_path / "other", embedder=PaletteEmbedder(),
                    num_workers=0, progress=False, ann=AnnSpec("IVF-bad"))
    assert not (tmp_path / "other").exists()


def test_two_stage_agreement_benchmark_on_a_trained_model_layout(tiny_mumur_model,
                                                                palette_corpus, tmp_path):
    """benchmarks/two_stage_agreement.py on a `mumur demo`-shaped folder: a shortlist covering
    the whole index agrees exactly; every language and the multi-shot group get a row. (The
    engine's shortlist is at least k = 10, the whole of this index, so no row can disagree.)"""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "two_stage_agreement.py"
    spec = importlib.util.spec_from_file_location("two_stage_agreement", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    folder = tmp_path / "demo"
    (folder / "corpus").mkdir(parents=True)
    build_index([palette_corpus], folder / "index", str(tiny_mumur_model), num_workers=0,
                progress=False)
    items = [{"path": p.name, "split": "test", "captions": {"en": [f"a {p.stem} thing"],
                                                            "de": [f"ein {p.stem} Ding"]},
              **({"shots": []} if p.suffix == ".mp4" else {})}
             for p in sorted(palette_corpus.rglob("*.*"))]
    (folder / "corpus" / "manifest.json").write_text(json.dumps({"items": items}))
    figures = bench.run(folder, ["en", "de"], 50, [2, 64])
    assert figures["queries"] == 2 * len(items) == 20 and figures["items"] == 10
    table = figures["agreement_recall10"]
    assert set(table) == {"all", "lang:en", "lang:de", "multi-shot", "single-shot"}
    assert table["all"]["64"] == 1.0
    assert figures["counts"]["multi-shot"] == 4 and figures["counts"]["lang:de"] == 10
