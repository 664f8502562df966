"""The offline default recipe learns: a tiny synthetic corpus, trained and evaluated end to end in
about a minute, must beat chance by a wide margin (and do it in a non-English language too)."""

import json

import pytest

from mumur.data.synthetic.generate import SynthConfig, generate
from mumur.model import load_model
from mumur.recipes.offline import (
    evaluate_offline,
    experiment_config,
    load_recipe,
    train_offline,
)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("offline-corpus")
    generate(root, SynthConfig(videos=96, images=0, seed=5, languages=("en", "de"),
                               val_fraction=0.05, test_fraction=0.17), workers=1,
             progress=False)
    return root


def test_tiny_train_and_eval_beats_chance(tiny_corpus, tmp_path):
    recipe = load_recipe().patch({
        "model": {"encoders": {"vision": {"channels": [16, 32, 32, 64], "dim": 64}},
                  "overrides": {"num_frames": 6, "embed_dim": 64}},
        "train": {"epochs": 25, "batch_size": 16, "num_workers": 0, "progress": False,
                  "validate": False}})
    result = train_offline(recipe, tiny_corpus, tmp_path / "run")
    model = load_model(result.final_model)
    video = evaluate_offline(model, tiny_corpus, num_workers=0, progress=False)["video"]
    n_test = video["dataset"]["items"]
    chance_r1 = 100.0 / n_test
    for lang in ("en", "de"):
        t2v = video["languages"][lang]["t2v"]
        assert t2v["R1"] >= 3 * chance_r1, (lang, t2v, n_test)
        assert t2v["MdR"] <= n_test / 4, (lang, t2v, n_test)  # chance median is ~n/2


def test_recipe_configs_are_valid_for_every_study_variant(tmp_path):
    from mumur.recipes.study import load_study
    from mumur.train.config import parse_experiment_config
    from mumur.train.experiment import build_model

    (tmp_path / "corpus").mkdir()
    for study in ("demo", "ablation"):
        config = load_study(study)
        base = load_recipe(config.recipe)
        for name, spec in config.variants.items():
            if spec.get("zero_shot"):
                continue
            recipe = base.patch(spec["patch"])
            exp = parse_experiment_config(experiment_config(recipe, tmp_path / "corpus"),
                                          tmp_path)
            model = build_model(exp.model, exp.train)
            assert model.config.head == recipe.model["name"], name
            assert exp.train.en_only == recipe.train.get("en_only", False), name
            assert json.loads(json.dumps(experiment_config(recipe, tmp_path / "corpus")))
