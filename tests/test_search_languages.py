"""Search per query branch: trained branches only (issue 8, fault 5a), the language rule of
evaluation (5b: English through the English branch), language detection, the stored layout."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest
import torch

from mumur.errors import QueryError
from mumur.index import Index, IndexLayout, ModelEmbedder, build_index
from mumur.index.language import choose_branch, detect_language
from mumur.model import branch_for_language
from mumur.model import load_model as _load_model

load_model = functools.lru_cache(_load_model)  # one load per model folder in this module

EN_QUERY = "a red circle moves left on the beach"
DE_QUERY = "ein roter Kreis bewegt sich am Strand nach links"


def _index(folder, corpus, tmp_path, name="index", loaded=False, **kw):
    """Index `corpus` with the model at `folder`: loaded by the index itself (`mumur index
    --model`), or with `loaded`, through an embedder of this module's cached copy."""
    embedder = ModelEmbedder(load_model(folder), str(folder)) if loaded else None
    build_index([corpus], tmp_path / name, model=None if loaded else str(folder),
                embedder=embedder, num_workers=0, progress=False, **kw)
    return Index(tmp_path / name, embedder=embedder)


def _reference(folder, corpus, query, branch) -> dict[str, float]:
    """path -> the model's own score (encode_text(branch) + head similarity), no index."""
    model = load_model(folder)
    paths = sorted(os.path.realpath(p) for p in corpus.rglob("*") if p.is_file())
    media = model.encode_media(paths)
    text = model.encode_text([query], branch=branch)
    scores = model.score(text, media.frames_ctx, media.mask, branch=branch)[0]
    return dict(zip(paths, scores.tolist()))


def _scores(response) -> dict[str, float]:
    return {r.path: r.score for r in response.results}


def _assert_scores(response, reference):
    got = _scores(response)
    assert len(got) == len(reference)
    np.testing.assert_allclose([got[p] for p in sorted(got)],
                               [reference[p] for p in sorted(got)], atol=1e-4)


def test_english_only_model_indexes_and_searches_through_its_trained_branch(
        two_branch_models, palette_corpus, tmp_path):
    folder = two_branch_models["en_only"]
    idx = _index(folder, palette_corpus, tmp_path)
    # Fault 5a: the untrained multilingual branch was used because a multilingual encoder exists.
    for query in (DE_QUERY, EN_QUERY):
        response = idx.search(query, k=10, exact=True)
        _assert_scores(response, _reference(folder, palette_corpus, query, "en"))
        assert response.branch == "en"
    assert idx.info()["branches"] == ["en"] and idx.embedder.layout.branches == ("en",)
    assert idx.search(DE_QUERY, k=3, language="de").branch == "en"  # the only trained branch
    idx.close()


def test_search_uses_the_branch_evaluation_uses_for_the_query_language(
        two_branch_models, palette_corpus, tmp_path):
    folder = two_branch_models["both"]
    idx = _index(folder, palette_corpus, tmp_path, loaded=True)
    # Fault 5b: English went through the multilingual branch; evaluation scores it with "en".
    english = idx.search(EN_QUERY, k=10, exact=True)
    _assert_scores(english, _reference(folder, palette_corpus, EN_QUERY, "en"))
    german = idx.search(DE_QUERY, k=10, exact=True)
    _assert_scores(german, _reference(folder, palette_corpus, DE_QUERY, "ml"))
    assert (english.branch, english.language, english.language_detected) == ("en", "en", True)
    assert (german.branch, german.language) == ("ml", "de")
    # A given language wins over detection; an ambiguous short query goes to "ml".
    forced = idx.search(EN_QUERY, k=10, exact=True, language="de")
    _assert_scores(forced, _reference(folder, palette_corpus, EN_QUERY, "ml"))
    short = idx.search("a dog", k=3)
    assert (short.branch, short.language, short.language_detected) == ("ml", None, False)
    assert idx.search("a dog", k=3, language="en-US").branch == "en"
    with pytest.raises(QueryError, match="language code"):
        idx.search("a dog", k=3, language="english!")
    # Two-stage agrees with exact through each branch's own stage-1 vectors (shortlist < N).
    idx.shortlist = 4
    for query in (EN_QUERY, DE_QUERY):
        exact = idx.search(query, k=2, exact=True)
        fast = idx.search(query, k=2)
        assert fast.branch == exact.branch
        assert [r.id for r in fast.results] == [r.id for r in exact.results]
    idx.close()


def test_layout_stores_each_branch_once_and_what_branches_share(two_branch_models,
                                                                palette_corpus, tmp_path):
    folder = two_branch_models["both"]
    idx = _index(folder, palette_corpus, tmp_path, loaded=True)
    layout = idx.embedder.layout
    # DCM: the keys are the frame states (shared); the folded values and the pooled vectors
    # belong to each branch's module.
    assert layout == IndexLayout(("en", "ml"),
                                 [("keys", 32), ("en/values_0", 32), ("ml/values_0", 32)],
                                 [("en/pooled", 32), ("ml/pooled", 32)])
    model = load_model(folder)
    arrays = idx.store.load_arrays()
    paths = [os.fspath(p) for p in arrays.paths]
    media = model.encode_media(paths)
    for branch in ("en", "ml"):
        with torch.no_grad():
            expected = model.head.pooled(media.frames_ctx, media.mask, branch).numpy()
        np.testing.assert_allclose(idx.engine(branch).arrays.pooled, expected, atol=1e-5)
    assert idx.engine("en").arrays.state is idx.engine("ml").arrays.state  # loaded once
    idx.close()


def test_branch_rule_and_detection():
    both = ("en", "ml")
    assert branch_for_language("en", both) == "en" and branch_for_language("EN-gb", both) == "en"
    assert branch_for_language("de", both) == "ml" and branch_for_language(None, both) == "ml"
    assert branch_for_language("en", ("ml",)) == "ml"
    assert branch_for_language("de", ("en",)) == "en"
    with pytest.raises(ValueError):
        branch_for_language("en", ())
    assert detect_language("a man is playing the guitar on a stage") == "en"
    assert detect_language("ein Mann spielt Gitarre auf der Bühne") == "de"
    assert detect_language("a dog") is None  # short: not confident
    assert choose_branch("kids playing soccer in the park", None, both).branch == "en"
    assert choose_branch("des enfants jouent au football", None, both).branch == "ml"
    # One branch: no detection needed, nothing reported as detected.
    only = choose_branch("kids playing soccer in the park", None, ("ml",))
    assert (only.branch, only.language, only.detected) == ("ml", None, False)


def test_clip_checkpoint_with_a_paired_text_encoder(tiny_clip_checkpoint, tiny_clip_checkpoint_b,
                                                    palette_corpus, tmp_path):
    """A CLIP checkpoint + paired text encoder is a meanP model: English through the CLIP text
    tower, other languages through the paired encoder, each score the cosine with the image."""
    from transformers import AutoTokenizer

    from mumur.encoders import load_encoder

    (folder, clip), (folder_b, clip_b) = tiny_clip_checkpoint, tiny_clip_checkpoint_b
    idx = _index(folder, palette_corpus, tmp_path, text_model=str(folder_b))
    layout = idx.embedder.layout
    assert layout == IndexLayout(("en", "ml"), [("frames", 16)], [("pooled", 16)])  # shared
    assert idx.info()["model_identity"].startswith("clip-meanpool:")
    vision = load_encoder(str(folder), modality="vision")
    from PIL import Image

    for query, language, reference in ((EN_QUERY, "en", clip), (DE_QUERY, "de", clip_b)):
        response = idx.search(query, k=10, exact=True, language=language)
        assert response.branch == ("en" if language == "en" else "ml")
        tokens = AutoTokenizer.from_pretrained(folder)([query], return_tensors="pt", padding=True)
        with torch.no_grad():
            t = torch.nn.functional.normalize(
                reference.get_text_features(**tokens).pooler_output, dim=-1)[0]
            for hit in response.results:
                if hit.media_type == "image":
                    pixels = vision.preprocess([Image.open(hit.path).convert("RGB")])
                    v = torch.nn.functional.normalize(
                        clip.get_image_features(pixel_values=pixels).pooler_output, dim=-1)[0]
                    assert hit.score == pytest.approx(float(t @ v), abs=1e-4)
    idx.close()


@pytest.mark.parametrize("name,options,state,pooled", [
    ("meanP", {}, [("frames", 8)], [("pooled", 8)]),
    ("mumur-dcm", {"share_branches": True}, [("keys", 8), ("values_0", 8)], [("pooled", 8)]),
    ("mumur-dcm", {"num_heads": 2},
     [("keys", 8), ("en/values_0", 8), ("ml/values_0", 8), ("en/values_1", 8), ("ml/values_1", 8)],
     [("en/pooled", 8), ("ml/pooled", 8)]),
])
def test_probe_layout_stores_shared_arrays_once(name, options, state, pooled):
    from mumur.index.embedder import _probe_layout
    from mumur.model import create_model

    head = create_model(name, frame_dim=6, embed_dim=8, text_dim_en=8, text_dim_ml=8,
                        **options).eval().head
    assert _probe_layout(head, ("en", "ml"), 6) == IndexLayout(("en", "ml"), state, pooled)
    single = _probe_layout(head, ("en",), 6)
    assert single.branches == ("en",) and all("/" not in n for n, _ in single.state)


def test_index_layout_columns_and_checks():
    layout = IndexLayout(("en", "ml"), [("keys", 4), ("en/values_0", 4), ("ml/values_0", 4)],
                         [("en/pooled", 4), ("ml/pooled", 4)])
    assert layout.state_columns("ml") == {"keys": slice(0, 4), "values_0": slice(8, 12)}
    assert layout.pooled_columns("ml") == slice(4, 8)
    assert (layout.state_dim, layout.pooled_dim) == (12, 8)
    assert IndexLayout.from_json(layout.to_json()) == layout
    with pytest.raises(ValueError, match="serves branches"):
        IndexLayout(("ml",), [("frames", 4)], [("pooled", 4)]).state_columns("en")
    with pytest.raises(ValueError, match="same arrays"):
        IndexLayout(("en", "ml"), [("keys", 4), ("en/values_0", 4)], [("pooled", 4)])
    with pytest.raises(ValueError, match="branches"):
        IndexLayout(("fr",), [("frames", 4)], [("pooled", 4)])
