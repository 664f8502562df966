"""The backbone catalogue (`mumur models`), the per-language recommendation, and the default model
of a new index."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mumur.cli import app
from mumur.index.catalogue import (
    default_index_model,
    language_recommendation,
    list_backbones,
    load_catalogue,
)


def test_every_entry_is_complete_and_cites_its_figure():
    backbones = list_backbones()
    names = [b.name for b in backbones]
    assert len(names) == len(set(names))
    for b in backbones:
        assert b.model and b.licence and b.family
        if b.xm3600_t2i_r1 is not None:
            assert 0 < b.xm3600_t2i_r1 < 100 and b.source and "XM3600" in b.source
    figures = {b.name: b.xm3600_t2i_r1 for b in backbones}
    assert figures["siglip2-base-patch16-256"] == 40.7
    assert figures["siglip2-so400m-patch16-256"] == 48.1
    assert figures["siglip-so400m-patch16-256-i18n"] == 50.0
    assert figures["nllb-clip-large"] == 54.6
    assert all(not b.commercial_use for b in backbones if b.family.startswith("NLLB"))


def test_cpu_figures_come_from_the_benchmark():
    data = load_catalogue()
    shapes = {b.shape for b in list_backbones() if b.shape}
    for shape, row in data["cpu"].items():
        assert shape in shapes and row["params"] > 0 and row["images_per_s"] > 0
        assert row["command"].startswith("python benchmarks/backbone_rate.py")


def test_open_clip_names_exist_in_open_clip():
    spec = importlib.util.find_spec("open_clip")
    if spec is None:
        pytest.skip("open_clip_torch not installed")
    configs = Path(next(iter(spec.submodule_search_locations))) / "model_configs"
    for b in list_backbones():
        if b.model.startswith("open_clip:"):
            arch = b.model.split(":")[1]
            assert (configs / f"{arch}.json").is_file(), b.model


@pytest.mark.parametrize(("language", "best", "commercial"), [
    ("de", "nllb-clip-large", "siglip-so400m-patch16-256-i18n"),
    ("sw", "nllb-clip-large", "siglip-so400m-patch16-256-i18n"),
    ("yo", "nllb-clip-large", None),  # not an XM3600 language: only NLLB names it
    ("zh-TW", "nllb-clip-large", None),
])
def test_language_recommendation(language, best, commercial):
    r = language_recommendation(language)
    assert r["best_reported"] == best and r["best_commercial"] == commercial
    names = [row["name"] for row in r["candidates"]]
    assert "clip-vit-b32" not in names and "world-stack" not in names
    assert any(row["covers"] == "maybe" for row in r["candidates"])  # XLM-R CLIP, M-CLIP


def test_english_recommendation_includes_clip():
    names = [row["name"] for row in language_recommendation("en")["candidates"]]
    assert "clip-vit-b32" in names and names[0] == "nllb-clip-large"


def test_default_model_with_and_without_the_hub(monkeypatch):
    chosen, note = default_index_model(hub=True)
    assert chosen.model == "google/siglip2-base-patch16-256" and chosen.commercial_use
    assert "mumur models" in note
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    chosen, note = default_index_model()  # probes: offline
    assert (chosen.model, chosen.text_model) == ("world-clip", "world-m-clip")
    assert "only knows the synthetic world" in note and "\n" not in note


def test_models_command_prints_the_catalogue_and_a_recommendation():
    runner = CliRunner()
    result = runner.invoke(app, ["models", "--lang", "de"])
    assert result.exit_code == 0, result.output
    assert "siglip2-base-patch16-256" in result.output and "for de: best reported" in result.output
    result = runner.invoke(app, ["models", "--json", "--lang", "sw"])
    data = json.loads(result.output)
    assert data["recommendation"]["language"] == "sw"
    assert {m["name"] for m in data["models"]} >= {"nllb-clip-base", "xlm-roberta-base-vit-b32"}


def test_new_index_without_model_gets_the_offline_default_and_never_switches(
        palette_corpus, tmp_path, monkeypatch, tiny_clip_checkpoint):
    from mumur.errors import IndexMismatchError
    from mumur.index import IndexStore, build_index

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    index = tmp_path / "index"
    report = build_index([palette_corpus], index, num_workers=0, progress=False)
    assert report.note and "synthetic world" in report.note
    assert report.summary().splitlines()[0] == report.note
    store = IndexStore(index)
    try:
        before = store.info()
    finally:
        store.close()
    assert "world-clip" in before["model"] and before["items"] == report.total > 0
    # another model on this index is refused; the index is left as it was
    with pytest.raises(IndexMismatchError, match="build a new index in another folder"):
        build_index([palette_corpus], index, str(tiny_clip_checkpoint[0]), num_workers=0,
                    progress=False)
    again = build_index([palette_corpus], index, num_workers=0, progress=False)
    assert again.note is None and again.total == before["items"]
