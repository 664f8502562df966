"""The study engine (`recipes/study.py`) on tiny worlds with the shipped world stack: worlds
generated once, heads trained on cached features, per-caption outcomes stored, figures with
intervals, a rerun reusing every finished (variant, seed), and clear errors on bad studies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mumur.errors import ConfigError
from mumur.recipes.study import StudyConfig, load_study, run_study
from mumur.recipes.study_report import study_markdown

TINY = {
    "recipe": "world",
    "train_world": {"seed": 7, "videos": 60, "images": 10, "multi_shot": 0.5},
    "test_worlds": {"seeds": [2301], "videos": 24, "images": 6, "multi_shot": 0.5},
    "seeds": [0, 1],
    "default": "dcm",
    "variants": {
        "dcm": {"patch": {"train": {"epochs": 2, "batch_size": 16, "num_workers": 0,
                                    "progress": False},
                          "data": {"val_languages": ["en"]}}},
        "zero-shot": {"zero_shot": True},
    },
}


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    path = out / "tiny.json"
    path.write_text(json.dumps(TINY))
    study = load_study(path)
    return study, out / "run", run_study(study, out / "run", workers=1)


def test_study_outcomes_and_figures(study_run):
    _, out, summary = study_run
    assert (out / "corpus" / "manifest.json").exists()
    assert (out / "worlds" / "test-2301" / "manifest.json").exists()
    dcm, zero = summary["variants"]["dcm"], summary["variants"]["zero-shot"]
    assert dcm["seeds"] == [0, 1] and zero["seeds"] == [0]  # zero-shot runs once
    video = dcm["video"]
    assert video["n_worlds"] == 2  # the corpus's own test split + one test world
    en = video["languages"]["en"]["t2v"]
    assert {"R1", "R1_std", "R1_ci95", "n_queries", "n_seeds"} <= set(en)
    assert en["n_seeds"] == 2 and en["R1_ci95"][0] <= en["R1"] <= en["R1_ci95"][1]
    assert video["non_en"]["n_groups"] == 14
    assert set(video["attributes_en"]) == {"place", "shape", "colour", "size", "motion"}
    assert video["in_shot_en"]["n"] > 0
    # The stored outcomes give the same R@1 as the summary.
    r1 = [100 * np.mean(np.load(out / "runs" / "dcm" / f"seed-{s}" / "outcomes.npz")
                        ["video/en/rank"] == 1) for s in (0, 1)]
    assert en["R1"] == pytest.approx(np.mean(r1), abs=1e-3)
    text = study_markdown(summary, "tiny", "mumur ablation --study tiny.json")
    assert "| dcm (default) |" in text and "| zero-shot |" in text and "±" in text


def test_rerun_reuses_finished_runs(study_run):
    study, out, summary = study_run
    stamp = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("outcomes.npz")}
    again = run_study(study, out, workers=1)
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("outcomes.npz")} == stamp
    assert again["variants"]["dcm"]["video"] == summary["variants"]["dcm"]["video"]


def test_bad_studies_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="both a train and a test world"):
        StudyConfig(**{**TINY, "test_worlds": {"seeds": [7], "videos": 1, "images": 0}})
    with pytest.raises(ConfigError, match="expected"):
        StudyConfig(**{**TINY, "variants": {"x": {"epochs": 3}}})
    with pytest.raises(ConfigError, match="default variant"):
        StudyConfig(**{**TINY, "default": "nope"})
    with pytest.raises(ConfigError, match="unknown variants"):
        StudyConfig(**TINY).select(["nope"])
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ConfigError, match="study file"):
        load_study(bad)
    with pytest.raises(ConfigError, match="unknown studies config"):
        load_study("nope")


def test_a_world_that_cannot_be_planned_fails_before_rendering(tmp_path):
    study = StudyConfig(**{**TINY, "test_worlds": {"seeds": [2301], "videos": 400,
                                                   "images": 200, "multi_shot": 0.3}})
    with pytest.raises(ConfigError, match="world seed 2301"):
        run_study(study, tmp_path / "out", workers=1)
    assert not (tmp_path / "out" / "corpus").exists()  # nothing rendered


def test_demo_on_a_finished_study_writes_the_contract_and_an_index(study_run, tmp_path):
    from mumur.index import Index
    from mumur.recipes.demo import run_demo

    _, out, _ = study_run
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    results = run_demo(out, study=str(path), workers=1, report=tmp_path / "demo.md")
    saved = json.loads((out / "results.json").read_text())
    assert saved["default_variant"] == "dcm" and saved["languages"]["en"]["t2v"]["n_seeds"] == 2
    assert set(saved["attributes"]) == {"place", "shape", "colour", "size", "motion"}
    assert 0.0 <= saved["timestamps"]["in_shot"] <= 1.0 and saved["timestamps"]["n"] > 0
    assert (out / "model").is_dir() and results["examples"]
    assert json.loads((tmp_path / "demo.json").read_text())["variants"].keys() == {"dcm",
                                                                                 "zero-shot"}
    hits = Index.open(out / "index").search("a red circle", k=3).results
    assert hits and all(h.path for h in hits)
