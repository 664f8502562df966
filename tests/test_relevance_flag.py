"""The calibrated `relevant` flag: attribute queries with known answers, the fitted rule, its
file beside the model, and search applying it (issue 14, part 5)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import PaletteEmbedder
from typer.testing import CliRunner

from mumur.cli import app
from mumur.cli.cmd_search import format_results
from mumur.index import Index
from mumur.index.calibration import (AttributeQuery, Result, attribute_queries, flag_figures,
                                     holdout_items)
from mumur.index.relevance import RelevanceRule, fit_rule, load_rules, save_rules


def _item(path, *scenes):
    shots = [{"scene": {"place": place, "objects": [{"colour": c, "shape": s}
                                                     for c, s in objects]}}
             for place, objects in scenes]
    return {"path": path, "shots": shots} if len(shots) > 1 else {"path": path, **shots[0]}


ITEMS = [_item("a.jpg", ("night", [("red", "circle"), ("blue", "star")])),
         _item("b.mp4", ("beach", [("red", "circle")]), ("snow", [("green", "heart")])),
         _item("c.jpg", ("grass", [("blue", "square")]))]


def test_attribute_queries_name_colour_shape_place_in_each_language():
    queries = attribute_queries(ITEMS, ("en", "de"), colours=("red", "green"),
                                shapes=("circle", "heart"), places=("night", "snow", "beach"))
    en = {q.text: q for q in queries if q.language == "en"}
    assert en["A red circle at night."].relevant == {"a.jpg"}
    assert en["A red circle on the beach."].relevant == {"b.mp4"}  # its first shot
    assert en["A green heart in the snow."].relevant == {"b.mp4"}  # its second shot
    assert en["A red circle in the snow."].no_match  # the right pair at another place
    de = [q for q in queries if q.language == "de"]
    assert len(de) == len(en) == 12 and not {q.text for q in de} & set(en)
    assert [q.relevant for q in de] == [q.relevant for q in queries if q.language == "en"]


def test_holdout_withholds_every_item_showing_a_withheld_pair():
    kept, withheld = holdout_items(ITEMS, fraction=0.5, seed=3)
    assert len(withheld) == 2  # of the 4 pairs
    shown = {"a.jpg": {("red", "circle"), ("blue", "star")},
             "b.mp4": {("red", "circle"), ("green", "heart")}, "c.jpg": {("blue", "square")}}
    assert set(withheld) <= set().union(*shown.values())
    assert {it["path"] for it in kept} == {p for p, pairs in shown.items()
                                           if not pairs & set(withheld)}
    assert holdout_items(ITEMS, 0.5, 3) == (kept, withheld)  # seeded
    assert holdout_items(ITEMS, 0.0)[0] == ITEMS


def _queries(rng, informative: bool, n: int = 80) -> list[AttributeQuery]:
    """Half the match queries rank a relevant item first (score 0.8-0.9 when `informative`),
    the rest an irrelevant one (0.5-0.7); no-match queries' best score is 0.4-0.7. z is noise."""
    queries = []
    for i in range(n):
        kind = i % 4
        relevant = frozenset() if kind == 3 else frozenset({f"r{i}"})
        hit = kind < 2
        top = rng.uniform(0.8, 0.9) if hit and informative else rng.uniform(0.4, 0.7)
        results = [Result(f"r{i}" if hit else f"x{i}", top, rng.normal(3, 1), False)]
        results += [Result(f"y{i}-{j}", top - 0.3 - 0.02 * j, rng.normal(2, 1), False)
                    for j in range(4)]
        queries.append(AttributeQuery(f"q{i}", relevant, results))
    return queries


def test_fit_rule_puts_the_threshold_in_the_gap():
    queries = _queries(np.random.default_rng(0), informative=True)
    rule, figures = fit_rule(queries)
    assert rule.supported and rule.statistic == "score"
    lowest_hit = min(q.results[0].score for q in queries if q.results[0].path in q.relevant)
    assert 0.7 < rule.threshold < lowest_hit  # in the gap, not on an observed score
    assert figures == flag_figures(queries, rule.threshold, "score")
    assert figures["flagged_precision"] >= 0.93 and figures["no_match_flagged"] == 0.0
    assert figures["top_relevant_flagged"] == 1.0  # every relevant top result is flagged


def test_fit_rule_refuses_a_model_that_cannot_tell():
    queries = _queries(np.random.default_rng(1), informative=False)
    rule, figures = fit_rule(queries)
    assert not rule.supported and rule.threshold is None
    assert figures["flagged_precision"] < 0.93 and figures["best_statistic"] in ("score", "z")
    assert not rule.flags(np.array([0.99, 0.1]), np.array([9.0, 0.0])).any()
    # A looser target is met by the informative half of the same kind of data.
    loose, _ = fit_rule(_queries(np.random.default_rng(1), informative=True), precision=0.5)
    assert loose.supported


def test_rules_file_round_trip_and_identity(tmp_path):
    rules = {"en": RelevanceRule("score", 0.75), "ml": RelevanceRule(None, None)}
    path = save_rules(tmp_path, "mumur:x:en+ml", rules, {"en": {"flagged": 3}}, {"seed": 0})
    assert json.loads(path.read_text())["branches"]["ml"]["supported"] is False
    assert load_rules(tmp_path, "mumur:x:en+ml") == rules
    assert load_rules(path) == rules
    assert load_rules(tmp_path, "mumur:other:en+ml") == {}  # calibrated for another model
    assert load_rules(tmp_path / "missing") == {}


def test_search_applies_the_calibrated_rule(palette_index_dir, palette_corpus, tmp_path):
    embedder = PaletteEmbedder()
    plain = Index(palette_index_dir, embedder=embedder, relevance=False)
    reference = plain.search("red", k=6)
    plain.close()
    assert reference.flag_rule == "bonferroni" and reference.flag_statistic == "z"
    scores = [r.score for r in reference.results]
    cut = (scores[2] + scores[3]) / 2  # flag exactly the best three
    save_rules(tmp_path, embedder.identity, {"ml": RelevanceRule("score", cut)}, {}, {})
    idx = Index(palette_index_dir, embedder=embedder, relevance=tmp_path)
    response = idx.search("red", k=6)
    assert response.flag_rule == "calibrated" and response.flag_statistic == "score"
    assert response.threshold == pytest.approx(cut)
    assert [r.relevant for r in response.results] == [True] * 3 + [False] * 3
    assert [r.calibrated for r in response.results] == [r.calibrated for r in reference.results]
    assert response.relevant and json.dumps(response.to_dict())
    image = idx.search_image(palette_corpus / "red_0.png", k=2)
    assert image.flag_rule == "bonferroni"  # image queries keep the uncalibrated rule
    idx.close()
    save_rules(tmp_path, embedder.identity, {"ml": RelevanceRule(None, None)}, {}, {})
    idx = Index(palette_index_dir, embedder=embedder, relevance=tmp_path)
    response = idx.search("red", k=3)
    idx.close()
    assert response.flag_rule == "unsupported" and response.threshold is None
    assert not any(r.relevant for r in response.results) and not response.relevant
    text = format_results(response)
    assert text.startswith("relevance unknown") and "(not relevant)" not in text
    assert json.loads(json.dumps(response.to_dict()))["threshold"] is None


@pytest.mark.slow
def test_calibrate_command_on_a_world(tmp_path, tiny_mumur_model):
    """End to end on a generated world: a random model cannot reach 90% precision, so the
    written rule declares every branch unsupported, and search then flags nothing."""
    from mumur.data.synthetic.generate import SynthConfig, generate

    world = tmp_path / "world"
    generate(world, SynthConfig(videos=12, images=30, seed=4, languages=("en", "de")),
             workers=1, progress=False)
    out = tmp_path / "cal"
    result = CliRunner().invoke(app, [
        "calibrate", "--model", str(tiny_mumur_model), "--world", str(world), "--out", str(out),
        "--work", str(tmp_path / "work"), "--languages", "en", "--languages", "de", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["path"] == str(out / "relevance.json")
    assert summary["branches"] and not any(b["supported"] for b in summary["branches"].values())
    assert summary["provenance"]["languages"] == ["de", "en"]
    idx = Index(tmp_path / "work" / "index", relevance=out)
    response = idx.search("A red circle at night.", k=3, language="de")
    idx.close()
    assert response.flag_rule == "unsupported" and not response.relevant
    assert summary["provenance"]["holdout"] == 0.2


@pytest.mark.slow
def test_demo_calibrates_its_model_on_the_validation_split(tmp_path, tiny_mumur_model):
    """`mumur demo`'s calibration step writes relevance.json beside its model (then used by
    every index of that model) and reports it in strict JSON; a rerun rebuilds nothing stale."""
    import shutil

    from rich.console import Console

    from mumur.data.synthetic.generate import SynthConfig, generate
    from mumur.index.relevance import load_rules
    from mumur.recipes.demo import _calibrate

    out = tmp_path / "demo"
    generate(out / "corpus", SynthConfig(videos=10, images=20, seed=6, languages=("en", "de"),
                                         val_fraction=0.5, test_fraction=0.2),
             workers=1, progress=False)
    model = shutil.copytree(tiny_mumur_model, out / "model")
    report = _calibrate(model, out, Console(quiet=True))
    assert report["path"] == str(model / "relevance.json")
    assert report["provenance"]["splits"] == ["val"]
    json.dumps(report, allow_nan=False)  # results.json stays strict JSON
    assert set(load_rules(model)) == set(report["branches"])
    assert _calibrate(model, out, Console(quiet=True))["branches"] == report["branches"]
