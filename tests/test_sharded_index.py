"""Sharded indexes searched as one: fan out, exact top-k merge, global ids, the server over
several shards."""

from __future__ import annotations

import pytest
from conftest import PaletteEmbedder

from mumur.errors import IndexMismatchError
from mumur.index import Index, build_index
from mumur.index.engine import SearchResult
from mumur.index.sharded import ShardedIndex, merge_top_k, open_index
from mumur.media.decode import media_type_of

QUERIES = ["red", "green", "blue", "yellow", "blue red", "purple", "rot"]


def _key(r):
    return (r.path, r.score, r.media_type, r.timestamp)


def _assert_same_ranking(got, want):
    """Same scores in the same order; tied items may come in another order (a single index
    breaks ties by row, the merge by shard), and at the k-th score either tied item may be in."""
    assert [r.score for r in got] == [r.score for r in want]
    if want:
        last = want[-1].score
        assert sorted(_key(r) for r in got if r.score > last) == \
            sorted(_key(r) for r in want if r.score > last)


@pytest.fixture
def shards(palette_corpus, palette_index_dir, tmp_path):
    files = sorted(str(p) for p in palette_corpus.rglob("*") if media_type_of(p))
    roots = []
    for s in range(3):  # three unequal shards, one holding both videos
        root = tmp_path / f"shard{s}"
        part = [f for i, f in enumerate(files) if i % 3 == s]
        build_index(part, root, embedder=PaletteEmbedder(), num_workers=0, progress=False)
        roots.append(root)
    single = Index(palette_index_dir, embedder=PaletteEmbedder())
    sharded = ShardedIndex(roots, embedder=PaletteEmbedder())
    yield single, sharded, roots
    single.close()
    sharded.close()


@pytest.mark.parametrize("media_type", [None, "image", "video"])
def test_exact_merge_equals_one_index(shards, media_type):
    single, sharded, _ = shards
    for query in QUERIES:
        for k in (1, 3, 5, 12):
            want = single.search(query, k=k, media_type=media_type, exact=True)
            got = sharded.search(query, k=k, media_type=media_type, exact=True)
            _assert_same_ranking(got.results, want.results)
            assert got.candidates == want.candidates and got.mode == "exact"
            assert got.branch == want.branch


def test_two_stage_merge_and_image_queries_equal_one_index(shards, palette_corpus):
    single, sharded, _ = shards
    for query in QUERIES:  # shortlists cover each small shard: same as exact here
        _assert_same_ranking(sharded.search(query, k=4).results,
                             single.search(query, k=4).results)
    image = palette_corpus / "blue_6.png"
    want, got = single.search_image(image, k=3), sharded.search_image(image, k=3)
    _assert_same_ranking(got.results, want.results)


def test_global_ids_name_the_shard_items_and_info_sums(shards):
    single, sharded, roots = shards
    results = sharded.search("blue", k=12, exact=True).results
    assert len({r.id for r in results}) == len(results)
    for r in results:
        assert sharded.item(r.id).path == r.path and sharded.item(r.id).id == r.id
        local, shard = divmod(r.id, len(roots))
        assert Index(roots[shard]).item(local).path == r.path
    assert sharded.item(10**9) is None and sharded.item(-1) is None
    info, want = sharded.info(), single.info()
    assert (info["items"], info["images"], info["videos"]) == (
        want["items"], want["images"], want["videos"]) and info["shards"] == 3


def test_merge_top_k_orders_by_score_then_shard():
    def hit(i, score):
        return SearchResult(i, f"p{i}", score, "image", None, 0.0, False)

    merged = merge_top_k([[hit(1, 0.9), hit(2, 0.5)], [hit(1, 0.9), hit(7, 0.7)]], 3)
    assert [(r.id, r.score) for r in merged] == [(2, 0.9), (3, 0.9), (15, 0.7)]


def test_shards_of_different_models_are_refused(palette_corpus, tmp_path):
    for tag in ("v1", "v2"):
        build_index([palette_corpus / "sub"], tmp_path / tag, embedder=PaletteEmbedder(tag=tag),
                    num_workers=0, progress=False)
    with pytest.raises(IndexMismatchError, match="same model"):
        ShardedIndex([tmp_path / "v1", tmp_path / "v2"])
    assert isinstance(open_index([tmp_path / "v1"]), Index)


def test_server_holds_several_shards(shards):
    from fastapi.testclient import TestClient

    from mumur.serve import create_app, load_resources

    single, _, roots = shards
    resources = load_resources(roots, embedder=PaletteEmbedder())
    with TestClient(create_app(resources)) as client:
        body = client.get("/api/search", params={"q": "red", "k": 3}).json()
        assert [r["path"] for r in body["results"]] == \
            [r.path for r in single.search("red", k=3).results]
        first = body["results"][0]
        media = client.get(f"/api/media/{first['id']}")
        assert media.status_code == 200 and len(media.content) > 0
    resources.index.close()
