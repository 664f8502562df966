"""Routes comparison: bitext between every language pair, Tatoeba files, Multi-HowTo100M
subtitles, the routes study config, MMP recipe, and the language code given to routed encoders
in evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mumur.data import load_benchmark
from mumur.data.tatoeba import load_tatoeba, tatoeba_languages
from mumur.errors import ConfigError, DatasetError
from mumur.eval.bitext import language_embeddings, pairwise_bitext_ranks, tatoeba_scores


class _Routed(torch.nn.Module):
    """A text encoder that embeds by word identity and records the language it was told."""

    code_family = "m2m100"
    dim = 4

    def __init__(self):
        super().__init__()
        self.told: list[str | None] = []
        self._code = None
        self.training = False

    def language(self, code):
        import contextlib

        @contextlib.contextmanager
        def block():
            self._code = code
            yield
            self._code = None
        return block()

    def forward(self, texts):
        self.told.append(self._code)
        words = {"one": 0, "un": 0, "eins": 0, "two": 1, "deux": 1, "zwei": 1, "three": 2,
                 "trois": 2, "drei": 2}
        out = torch.full((len(texts), 4), 0.01)
        for i, t in enumerate(texts):
            out[i, words.get(t, 3)] = 1.0
        return out


def test_pairwise_bitext_ranks_known_answer():
    e = {"en": np.eye(3, dtype=np.float32), "de": np.eye(3, dtype=np.float32),
         "fr": np.eye(3, dtype=np.float32)[[1, 0, 2]]}
    ranks = pairwise_bitext_ranks(e)
    assert set(ranks) == {(a, b) for a in e for b in e if a != b}
    assert ranks[("en", "de")].tolist() == [1, 1, 1]
    assert ranks[("en", "fr")][2] == 1 and ranks[("en", "fr")][0] > 1
    with pytest.raises(ValueError):
        pairwise_bitext_ranks({"en": np.eye(3), "de": np.eye(2)})


def test_language_embeddings_tell_a_routed_encoder_each_language():
    enc = _Routed()
    out = language_embeddings(enc, {"de": ["eins", "zwei"], "fr": ["un", "deux"]})
    assert enc.told == ["de", "fr"]
    assert out["de"].shape == (2, 4) and np.allclose(np.linalg.norm(out["fr"], axis=1), 1)


def test_tatoeba_files_and_scores(tmp_path):
    (tmp_path / "tatoeba.deu-eng.deu").write_text("eins\nzwei\ndrei\n", encoding="utf-8")
    (tmp_path / "tatoeba.deu-eng.eng").write_text("one\ntwo\nthree\n", encoding="utf-8")
    (tmp_path / "tatoeba.fra-eng.fra").write_text("un\ndeux\n", encoding="utf-8")
    (tmp_path / "tatoeba.fra-eng.eng").write_text("two\none\n", encoding="utf-8")
    (tmp_path / "tatoeba.ita-eng.ita").write_text("uno\n", encoding="utf-8")  # no .eng: skipped
    assert tatoeba_languages(tmp_path) == ["de", "fr"]
    pair = load_tatoeba(tmp_path, "de")
    assert pair.language == "de" and pair.sentences[2] == "drei" and pair.english[0] == "one"
    scores = tatoeba_scores(_Routed(), tmp_path)
    assert scores["de"] == {"x_to_en": 100.0, "en_to_x": 100.0, "n": 3}
    assert scores["fr"]["x_to_en"] == 0.0  # the English side is shuffled
    (tmp_path / "tatoeba.spa-eng.spa").write_text("a\nb\n", encoding="utf-8")
    (tmp_path / "tatoeba.spa-eng.eng").write_text("a\n", encoding="utf-8")
    with pytest.raises(DatasetError):
        load_tatoeba(tmp_path, "es")
    with pytest.raises(DatasetError):
        load_tatoeba(tmp_path, "ja")


def test_multi_howto100m_subtitles(tmp_path):
    en = {"vidA": {"text": ["cut the onion", "fry it"], "start": [0.0, 4.5], "end": [4.0, 9.0]},
          "vidB": {"text": ["open the box"], "start": [1.0], "end": [2.0]}}
    de = {"vidA": {"text": ["schneide die Zwiebel", " "], "start": [0.0, 4.5],
                   "end": [4.0, 9.0]},
          "vidC": {"text": ["öffne"], "start": [0.0], "end": [1.0]}}
    (tmp_path / "how2_en.json").write_text(json.dumps(en), encoding="utf-8")
    (tmp_path / "how2_de.json").write_text(json.dumps(de, ensure_ascii=False), encoding="utf-8")
    ds = load_benchmark("multi-howto100m", tmp_path, split="train")
    assert ds.items == ["vidA", "vidB", "vidC"]
    assert sorted(ds.languages) == ["de", "en"]
    assert (0, "de", "schneide die Zwiebel") in ds.captions and len(ds.captions) == 5
    assert ds.extra[0]["segments"]["en"] == [(0.0, 4.0), (4.5, 9.0)]
    assert ds.extra[0]["segments"]["de"] == [(0.0, 4.0)]  # the empty line is dropped
    assert str(ds.media_path(1)).endswith("vidB.mp4")
    small = load_benchmark("multi-howto100m", tmp_path, split="train", languages="de",
                           max_videos=1)
    assert small.items == ["vidA"]
    with pytest.raises(DatasetError):
        load_benchmark("multi-howto100m", tmp_path, split="train", languages="fr")
    (tmp_path / "how2_fr.json").write_text(json.dumps({"v": {"text": ["a"], "start": [0.0],
                                                             "end": []}}), encoding="utf-8")
    with pytest.raises(DatasetError):
        load_benchmark("multi-howto100m", tmp_path, split="train", languages="fr")
    with pytest.raises(ConfigError):
        load_benchmark("multi-howto100m", tmp_path, split="test")


def test_routes_study_fills_placeholders(tmp_path):
    from mumur.recipes.routes import load_routes, routes_study
    from mumur.recipes.routes_report import route_of
    from mumur.recipes.study import seeded_patch

    config = load_routes("routes")
    study = routes_study(config, tmp_path, seeds=[4])
    held = config["held_out"]
    assert study.seeds == (4,)
    assert {"zero-shot usem3", "translate-train", "distillation", "MLA", "MMP"} <= set(
        study.variants)
    text = json.dumps(study.variants)
    assert "{out}" not in text and "{held_out}" not in text and str(tmp_path.resolve()) in text
    ml = study.variants[f"translate-train, no {held}"]["patch"]["train"]["ml_languages"]
    assert held not in ml and "en" not in ml and len(ml) == 13
    patch = seeded_patch(study.variants["MMP"]["patch"], 4)
    assert patch["model"]["init_from"].endswith("/mmp/seed-4/pretrain/best")
    mla = study.variants["MLA"]["patch"]["model"]["encoders"]["text_ml"]
    assert mla.endswith(f"/mla/seed-{config['mla_seeds'][0]}/model")  # one MLA for all seeds
    many = routes_study({**config, "mla_seeds": [0, 1, 2]}, tmp_path)
    assert seeded_patch(many.variants["MLA"]["patch"], 2)["model"]["encoders"][
        "text_ml"].endswith("/mla/seed-2/model")
    assert route_of("MLA", held) == "mla" and route_of(f"MMP, no {held}", held) == f"mmp-no-{held}"
    assert route_of(f"MLA, {held} added", held) == f"mla-add-{held}"
    assert route_of("translate-train", held) is None
    from mumur.recipes.routes import held_out_variants

    assert sorted(held_out_variants(study, held)) == sorted(
        [f"MLA, no {held}", f"MLA, {held} added", f"MMP, no {held}"])


def test_mmp_recipe():
    from mumur.recipes.mmp import load_mmp_recipe

    recipe = load_mmp_recipe("world-mmp", exclude_languages=("pt",))
    assert "pt" not in recipe.languages and "en" in recipe.languages
    with pytest.raises(ConfigError):
        load_mmp_recipe("world-mmp", exclude_languages=("en",))


def test_query_outcomes_give_a_routed_encoder_the_caption_language():
    """The study's scorer tells a text encoder with a code family the captions' language, as
    `runner.evaluate` does (MLA routes by it)."""
    import contextlib

    from test_eval_runner import FRAME_DIM, N_FRAMES, N_ITEMS, HashTextEncoder

    from mumur.data import RetrievalDataset
    from mumur.eval.outcomes import query_outcomes
    from mumur.eval.runner import encode_dataset_media
    from mumur.model import create_model

    class Coded(HashTextEncoder):
        code_family = "m2m100"

        def __init__(self):
            super().__init__()
            self.told = []

        @contextlib.contextmanager
        def language(self, code):
            self.told.append(code)
            yield

    encoder = Coded()
    model = create_model("meanP", text_en=encoder, embed_dim=8, frame_dim=FRAME_DIM,
                         num_frames=N_FRAMES).eval()
    captions = [(i, "en", f"caption of item {i}") for i in range(N_ITEMS)]
    dataset = RetrievalDataset("toy", "test", [f"v{i}" for i in range(N_ITEMS)], captions)
    rng = np.random.default_rng(0)
    states = encode_dataset_media(model, dataset, frame_features=(
        rng.normal(size=(N_ITEMS, N_FRAMES, FRAME_DIM)).astype(np.float32),
        np.ones((N_ITEMS, N_FRAMES), dtype=bool)), progress=False)
    query_outcomes(model, dataset, states, "en")
    assert encoder.told and set(encoder.told) == {"en"}


@pytest.mark.slow
def test_mmp_pretrain_end_to_end_shares_one_text_transformer(tmp_path):
    from mumur.model import load_model
    from mumur.recipes.mmp import load_mmp_recipe, pretrain_mmp

    recipe_file = tmp_path / "mmp.json"
    recipe_file.write_text(json.dumps({
        "name": "tiny-mmp", "world": {"seed": 1005, "videos": 24, "images": 0},
        "text": {"vocab_size": 600, "hidden_size": 32, "layers": 1, "heads": 2,
                 "intermediate_size": 64},
        "pretrain": {"model": {"overrides": {"temporal": "transformer", "temporal_layers": 1,
                                             "temporal_heads": 4, "share_branches": True}},
                     "train": {"epochs": 1, "batch_size": 8, "progress": False}},
        "exclude_languages": ["pt"]}))
    results = pretrain_mmp(load_mmp_recipe(recipe_file), tmp_path / "run", seed=0)
    assert "pt" not in results["languages"] and results["steps"] >= 1
    model = load_model(results["model"])
    assert model.text_en is model.text_ml  # one text transformer for every language
    assert model.config.head_config.share_branches
    assert results["text_parameters"] == sum(p.numel() for p in model.text_ml.parameters())


def test_routes_markdown_renders_every_table():
    from mumur.eval.stats import summarize_ranks
    from mumur.recipes.routes_report import routes_markdown

    rng = np.random.default_rng(0)

    def fig():
        return summarize_ranks([rng.integers(1, 5, size=20) for _ in range(3)], 10, n_boot=50)

    langs = ["en", "de", "pt"]
    mla_params = {"trainable": 200_000, "embedding": 150_000, "one_language": 10_000,
                  "full_finetune": 10_000_000, "trainable_fraction": 0.02}
    variants = {}
    for name in ("zero-shot usem3", "translate-train", "MLA", "MLA, no pt", "MLA, pt added"):
        route = {"parameters": 200_000 if name.startswith("MLA") else 0, "seconds": 30.0,
                 "seeds": 3}
        if name.endswith("added"):
            route.update(added_parameters=10_000, added_seconds=4.0)
        variants[name] = {"seeds": [0, 1, 2], "languages": {lang: fig() for lang in langs},
                          "non_en": fig(), "head_parameters": 50_000, "route": route,
                          "trainable_parameters": 50_000 + route["parameters"],
                          "head_seconds": 40.0, "train_seconds": 70.0}
    summary = {
        "held_out": "pt", "variants": variants,
        "weights": {"world-clip": "clip-text:world-clip@x", "world-m-clip": "m-clip@y"},
        "route_trainings": {"mla": {"0": {"parameters": mla_params}}},
        "study": {"variants": {"MLA": {"video": {"items": 100, "n_worlds": 2, "gallery": 50}}},
                  "test_worlds": {"seeds": [2101]}, "train_world": {"seed": 0},
                  "seeds": [0, 1, 2]},
        "bitext": {"sentences": 20, "world": {"seed": 2001}, "towers": {"usem3 (text only)": {
            "seeds": 1, "all_pairs": fig(), "en_to_x": fig(), "x_to_en": fig(),
            "held_out_pairs": fig()}}}}
    text = routes_markdown(summary)
    for needle in ("| MLA, pt added |", "| pt |", "## Held-out language: pt",
                   "10.0k parameters, 4 s per seed", "| usem3 (text only) |", "2.0%"):
        assert needle in text, needle
    assert text.count("\n| ") >= 5 + 3 + 3 + 1
