"""Search: rankings, timestamps, calibration, two-stage vs exact, image queries, CLI contract."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import torch
from conftest import PaletteEmbedder
from typer.testing import CliRunner

from mumur.errors import IndexMismatchError, QueryError
from mumur.index import SCHEMA_VERSION, Index, build_index
from mumur.index.search import SearchEngine, relevance_threshold, robust_null
from mumur.index.store import StoredArrays


@pytest.fixture
def palette_index(palette_index_dir):
    idx = Index(palette_index_dir, embedder=PaletteEmbedder())
    yield idx
    idx.close()


def _name(result) -> str:
    return os.path.basename(result.path)


def test_text_search_ranks_by_colour_with_video_timestamp(palette_index):
    response = palette_index.search("red", k=3)
    names = [_name(r) for r in response.results]
    assert sorted(names) == ["blue_red.mp4", "red_0.png", "red_4.png"]
    assert [r.score for r in response.results] == sorted(
        (r.score for r in response.results), reverse=True)
    video = next(r for r in response.results if r.media_type == "video")
    # 8 frames at 2 fps, red in frames 4-5 (2.0-3.0 s); uniform samples at 0.5/1.5/2.5/3.5 s.
    assert video.timestamp == pytest.approx(2.5)
    assert all(r.timestamp is None for r in response.results if r.media_type == "image")
    blue = palette_index.search("blue", k=1, media_type="video").results[0]
    assert _name(blue) == "blue_red.mp4" and blue.timestamp in (0.5, 1.5, 3.5)
    # Any language: the query side maps words, the index does not care.
    assert [_name(r) for r in palette_index.search("rot", k=3).results] == names


def test_type_filter(palette_index):
    videos = palette_index.search("green", k=5, media_type="video").results
    images = palette_index.search("green", k=20, media_type="image").results
    assert [r.media_type for r in videos] == ["video", "video"]
    assert _name(videos[0]) == "green.mp4"
    assert len(images) == 8 and {r.media_type for r in images} == {"image"}


def test_calibration_flags_absent_concepts(palette_index):
    present = palette_index.search("yellow", k=3)
    absent = palette_index.search("purple", k=3)
    assert present.relevant and present.results[0].calibrated >= present.threshold
    assert not absent.relevant and absent.results[0].calibrated < absent.threshold
    assert present.threshold == pytest.approx(relevance_threshold(10, 10), abs=1e-3)


def test_relevance_threshold_and_null_fit():
    assert relevance_threshold(1) < relevance_threshold(100) < relevance_threshold(100_000)
    assert relevance_threshold(1000) == pytest.approx(3.8906, abs=1e-3)  # Phi^-1(1 - 5e-5)
    assert relevance_threshold(10, 10) == pytest.approx(3.2498, abs=2e-3)  # t_9 at 0.995
    assert relevance_threshold(1000, 30) == pytest.approx(4.5055, abs=2e-3)  # t_29, 1 - 5e-5
    rng = np.random.default_rng(0)
    null = np.concatenate([rng.normal(0.2, 0.05, 990), np.full(10, 0.9)])  # 1% true matches
    median, scale = robust_null(null)
    assert median == pytest.approx(0.2, abs=0.01) and scale == pytest.approx(0.05, rel=0.1)


def test_image_query_finds_itself(palette_index, palette_corpus):
    response = palette_index.search_image(palette_corpus / "blue_6.png", k=3)
    assert response.mode == "image"
    assert _name(response.results[0]) == "blue_6.png"
    assert response.results[0].score == pytest.approx(1.0, abs=1e-5)
    assert {_name(r) for r in response.results} <= {"blue_2.png", "blue_6.png", "blue_red.mp4"}


@pytest.mark.parametrize("query,k,media_type", [
    ("", 10, None), ("   ", 10, None), ("x" * 501, 10, None), ("bad\x00query", 10, None),
    ("red", 0, None), ("red", 1001, None), ("red", 5, "audio"),
])
def test_invalid_queries_raise_typed_errors(palette_index, query, k, media_type):
    with pytest.raises(QueryError):
        palette_index.search(query, k=k, media_type=media_type)


def test_fp16_storage_keeps_rankings(palette_corpus, tmp_path):
    build_index([palette_corpus], tmp_path / "f16", embedder=PaletteEmbedder(), fp16=True,
                num_workers=0, progress=False)
    half = Index(tmp_path / "f16", embedder=PaletteEmbedder())
    assert half.info()["dtype"] == "float16"
    assert half.engine().arrays.state.dtype == np.float16
    build_index([palette_corpus], tmp_path / "f32", embedder=PaletteEmbedder(),
                num_workers=0, progress=False)
    full = Index(tmp_path / "f32", embedder=PaletteEmbedder())
    for query in ["red", "green", "orange"]:
        a, b = half.search(query, k=4, exact=True), full.search(query, k=4, exact=True)
        np.testing.assert_allclose([r.score for r in a.results], [r.score for r in b.results],
                                   atol=2e-3)


def _dcm_engine(n=400, t=4, dim=16, shortlist=64, seed=0, topic_noise=None):
    """A `SearchEngine` over a random `mumur-dcm` head's index arrays ("ml" branch). Frame
    features are i.i.d. noise, or with `topic_noise` a per-item topic vector plus that much
    per-frame noise (the frames of an item agree, as in real videos)."""
    from mumur.model import create_model

    torch.manual_seed(seed)
    model = create_model("mumur-dcm", frame_dim=dim, embed_dim=dim, text_dim_en=dim,
                         text_dim_ml=dim).eval()
    head = model.head
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((n, t, dim)).astype(np.float32)
    if topic_noise is not None:
        feats = rng.standard_normal((n, 1, dim)).astype(np.float32) + topic_noise * feats
    feats = torch.from_numpy(feats)
    mask = torch.ones(n, t, dtype=torch.bool)
    mask[::3, 2:] = False
    with torch.no_grad():
        ctx = head.contextualize(feats, mask)
        pooled = head.pooled(ctx, mask, "ml")  # uniform-attention DCM output, normalised
        state = head.index_state(ctx, mask, "ml")
    keys = sorted(state)
    packed = torch.cat([state[k] for k in keys], -1).numpy()

    def score(q, s, m):
        parts = dict(zip(keys, torch.from_numpy(s).split(dim, dim=-1)))
        with torch.no_grad():
            out = head.score_index_state(torch.from_numpy(q), parts, torch.from_numpy(m), "ml")
        return out[0].numpy(), out[1].numpy()

    arrays = StoredArrays(
        ids=np.arange(1, n + 1), paths=[f"v{i}.mp4" for i in range(n)],
        media_types=np.ones(n, np.int8), pooled=pooled.numpy(), state=packed,
        mask=mask.numpy(), timestamps=np.tile(np.arange(t, dtype=np.float32), (n, 1)),
        generation=1)
    return SearchEngine(arrays, score, shortlist=shortlist), head, ctx, mask


def _top_ids(engine, queries, k, exact=False):
    return [[r.id for r in engine.search(q, k=k, exact=exact)[0]] for q in queries]


def test_two_stage_matches_exact_with_a_shortlist_much_smaller_than_the_index():
    """Stage 1 (uniform-attention DCM pooled vectors) shortlists 32 of 2,000 items; stage 2's
    exact DCM scores then give the exact top 5 for (nearly) every query. With stage 1 made
    uninformative (pooled vectors shuffled across items) the same shortlist fails, and a
    shortlist of only k misses some: the shortlist is what two-stage depends on."""
    n, k = 2000, 5
    engine, _, _, _ = _dcm_engine(n=n, shortlist=32, topic_noise=1.5)
    rng = np.random.default_rng(1)
    queries = engine.arrays.pooled[rng.integers(0, n, 40)] + 0.8 * rng.standard_normal(
        (40, 16)).astype(np.float32)  # near an item, not on it
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = _top_ids(engine, queries, k, exact=True)

    def agreement(e):
        return np.mean([a == b for a, b in zip(_top_ids(e, queries, k), exact)])

    assert agreement(engine) >= 0.95
    for query in queries[:5]:  # identical results carry identical scores
        fast, full = engine.search(query, k=k)[0], engine.search(query, k=k, exact=True)[0]
        np.testing.assert_allclose([r.score for r in fast], [r.score for r in full], atol=1e-6)
    shuffled = dataclasses.replace(engine.arrays, pooled=engine.arrays.pooled[rng.permutation(n)])
    assert agreement(SearchEngine(shuffled, engine.score_fn, shortlist=32)) <= 0.1
    assert agreement(SearchEngine(engine.arrays, engine.score_fn, shortlist=k)) < agreement(
        engine)


def test_engine_exact_matches_head_similarity_brute_force():
    engine, head, ctx, mask = _dcm_engine()
    rng = np.random.default_rng(1)
    query = rng.standard_normal(16).astype(np.float32)
    query /= np.linalg.norm(query)
    with torch.no_grad():
        ref = head.similarity(torch.from_numpy(query[None]), ctx, mask, "ml")[0].numpy()
        att = head.attention(torch.from_numpy(query[None]), ctx, mask, "ml")[0].numpy()
    engine.chunk_elems = 16 * 32 * 7  # force several chunks
    results, _ = engine.search(query, k=10, exact=True)
    order = np.argsort(-ref, kind="stable")[:10]
    assert [r.id - 1 for r in results] == order.tolist()
    np.testing.assert_allclose([r.score for r in results], ref[order], atol=1e-5)
    best = [float(np.argmax(np.where(mask[i].numpy(), att[i], -np.inf))) for i in order]
    assert [r.timestamp for r in results] == best
    # Two-stage with the shortlist covering everything is exact; a short list mostly agrees.
    engine.shortlist = len(engine)
    assert [r.id for r in engine.search(query, k=10)[0]] == [r.id for r in results]
    with_faiss = SearchEngine(engine.arrays, engine.score_fn, shortlist=40, stage1="faiss")
    numpy_stage1 = SearchEngine(engine.arrays, engine.score_fn, shortlist=40, stage1="numpy")
    assert with_faiss.stage1_bytes() == 400 * 16 * 2 and numpy_stage1.stage1_bytes() == 0
    fast = [r.id for r in with_faiss.search(query, k=10)[0]]
    assert fast == [r.id for r in numpy_stage1.search(query, k=10)[0]]
    assert len(set(fast) & {r.id for r in results}) >= 8  # uniform-attention stage 1 is close


def test_cli_index_search_info_with_a_trained_model_folder(tiny_mumur_model, palette_corpus,
                                                           tmp_path):
    from mumur.cli import app

    runner = CliRunner()
    index = tmp_path / "index"
    out = runner.invoke(app, ["index", str(palette_corpus), "--index", str(index), "--model",
                              str(tiny_mumur_model), "--quiet", "--workers", "0", "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)
    assert summary["indexed"] == 10 and summary["total"] == 10

    out = runner.invoke(app, ["search", "ein roter Kreis", "--index", str(index), "--json",
                              "--top-k", "4"])
    assert out.exit_code == 0, out.output
    records = json.loads(out.stdout)
    assert len(records) == 4
    for rec in records:
        assert list(rec)[:4] == ["path", "score", "media_type", "timestamp"]
        assert (rec["timestamp"] is None) == (rec["media_type"] == "image")
    assert [r["score"] for r in records] == sorted((r["score"] for r in records), reverse=True)
    human = runner.invoke(app, ["search", "ein roter Kreis", "--index", str(index), "--lang",
                                "de", "--top-k", "2"])
    assert human.exit_code == 0 and "ml branch (language de)" in human.stdout, human.output
    bad_lang = runner.invoke(app, ["search", "red", "--index", str(index), "--lang", "d e"])
    assert bad_lang.exit_code != 0
    # The rest through the Python API (one model load instead of one per command).
    idx = Index(index)
    exact = idx.search("ein roter Kreis", k=4, exact=True)
    assert [r.path for r in exact.results] == [r["path"] for r in records]  # shortlist >= N
    videos = idx.search("a dog", k=10, media_type="video").results
    assert {r.media_type for r in videos} == {"video"} and len(videos) == 2
    image = idx.search_image(palette_corpus / "red_0.png", k=1).results
    assert os.path.basename(image[0].path) == "red_0.png"
    idx.close()

    info = json.loads(runner.invoke(app, ["info", "--index", str(index), "--json"]).stdout)
    assert {k: info[k] for k in ("items", "images", "videos")} == {
        "items": 10, "images": 8, "videos": 2}
    assert info["model"] == str(tiny_mumur_model.resolve())
    assert info["schema_version"] == SCHEMA_VERSION

    # A different model is refused with a clear message. (A new index without --model gets the
    # catalogue's default: tests/test_catalogue.py.)
    build_index([palette_corpus], tmp_path / "pal", embedder=PaletteEmbedder(), num_workers=0,
                progress=False)
    bad = runner.invoke(app, ["index", str(palette_corpus), "--index", str(tmp_path / "pal"),
                              "--model", str(tiny_mumur_model), "--quiet"])
    assert isinstance(bad.exception, IndexMismatchError)
    assert "built with model" in str(bad.exception)


def test_clip_checkpoint_index_matches_clip_scores(tiny_clip_checkpoint, palette_corpus,
                                                   tmp_path):
    from PIL import Image

    folder, clip = tiny_clip_checkpoint
    index = tmp_path / "index"
    report = build_index([palette_corpus], index, str(folder), num_workers=0, progress=False)
    assert len(report.indexed) == 10
    idx = Index(index)
    assert idx.info()["model_identity"].startswith("clip-meanpool:")
    response = idx.search("a red square", k=10, exact=True)
    assert len(response.results) == 10
    # Images: the score is CLIP's cosine between the text and the image (one frame).
    from mumur.encoders import load_encoder

    vision = load_encoder(str(folder), modality="vision")
    text = load_encoder(str(folder), modality="text")
    t = text.encode(["a red square"])[0]
    for hit in response.results:
        if hit.media_type == "image":
            v = vision.encode([Image.open(hit.path).convert("RGB")])[0]
            assert hit.score == pytest.approx(float(t @ v), abs=1e-4)
    # Videos, against transformers.CLIPModel itself: the cosine of the text with the normalised
    # mean of the normalised frame embeddings (CLIP4Clip meanP, what the numpy ClipEmbedder
    # computed), best second = the frame CLIP matches best.
    from transformers import AutoTokenizer

    from mumur.media.decode import read_frames

    tokens = AutoTokenizer.from_pretrained(folder)(["a red square"], return_tensors="pt")
    with torch.no_grad():
        t_ref = torch.nn.functional.normalize(clip.get_text_features(**tokens).pooler_output,
                                              dim=-1)[0]
        for hit in (h for h in response.results if h.media_type == "video"):
            frames = read_frames(hit.path, 12, strategy="uniform")
            v = torch.nn.functional.normalize(clip.get_image_features(
                pixel_values=vision.preprocess(frames.frames)).pooler_output, dim=-1)  # (T, D)
            mean = torch.nn.functional.normalize(v.mean(0), dim=-1)
            assert hit.score == pytest.approx(float(t_ref @ mean), abs=1e-4)
            best = int(torch.argmax(v @ t_ref))
            assert hit.timestamp == pytest.approx(frames.timestamps[best], abs=1e-3)
    assert response.branch == "en"  # no paired multilingual encoder: the CLIP text tower
    two_stage = idx.search("a red square", k=10)
    assert [r.id for r in two_stage.results] == [r.id for r in response.results]
    idx.close()


def test_latency_benchmark_runs_small(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "search_latency.py"
    spec = importlib.util.spec_from_file_location("search_latency", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    figures = bench.run([300], "float16", queries=4, exact_queries=2, shortlist=300, threads=1)
    row = figures["sizes"]["300"]
    assert row["recall10_agreement"] == 1.0  # the shortlist covers every video
    assert row["bytes_per_video_fp16"] < row["bytes_per_video_fp32"]
    assert row["two_stage_p50_ms"] > 0 and row["exact_p50_ms"] > 0
    assert "N=    300" in capsys.readouterr().out
