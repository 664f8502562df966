"""Trainer, schedule, training data and config tests with a tiny model and in-memory data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from mumur.data.dataset import RetrievalDataset
from mumur.errors import ConfigError, DatasetError
from mumur.losses import LossOutput, weighted_loss
from mumur.train.config import (
    TrainConfig,
    load_experiment_config,
    parse_experiment_config,
    train_config_from_dict,
)
from mumur.train.data import (
    CaptionSampler,
    FeatureFrameSource,
    PixelFrameSource,
    TextFeatureTable,
    TrainBatches,
    select_frames,
)
from mumur.train.schedule import build_scheduler, warmup_cosine
from mumur.train.checkpoint import CheckpointError
from mumur.train.trainer import Trainer

torch.set_num_threads(1)

DV, DT, D = 8, 6, 5


class TinyModel(nn.Module):
    """Frame features and text features projected to a joint space, symmetric InfoNCE per branch;
    dropout makes the run depend on the torch RNG (so resume must restore it)."""

    def __init__(self):
        super().__init__()
        self.frame_proj = nn.Linear(DV, D)
        self.en_proj = nn.Linear(DT, D)
        self.ml_proj = nn.Linear(DT, D)
        self.dropout = nn.Dropout(0.2)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.calls = 0
        self.crash_at_call: int | None = None

    def _loss(self, text, video):
        logits = self.logit_scale.exp() * F.normalize(text, dim=-1) @ F.normalize(video, dim=-1).t()
        target = torch.arange(len(text))
        return F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)

    def compute_loss(self, batch: dict) -> LossOutput:
        self.calls += 1
        if self.crash_at_call is not None and self.calls >= self.crash_at_call:
            raise RuntimeError("simulated crash")
        mask = batch["mask"].float().unsqueeze(-1)  # (B, T, 1)
        frames = self.frame_proj(self.dropout(batch["frame_features"]))  # (B, T, D)
        video = (frames * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B, D)
        terms = {"en": self._loss(self.en_proj(batch["text_en_features"]), video)}
        if "text_ml_features" in batch:
            terms["ml"] = self._loss(self.ml_proj(batch["text_ml_features"]), video)
        return weighted_loss(terms)


def tiny_dataset(n=12, split="train") -> RetrievalDataset:
    captions = []
    for i in range(n):
        captions += [(i, "en", f"item {i} en a"), (i, "en", f"item {i} en b"),
                     (i, "de", f"item {i} de"), (i, "fr", f"item {i} fr")]
        if i % 3 == 0:
            captions.append((i, "ja", f"item {i} ja"))
    return RetrievalDataset(name="tiny", split=split, items=[f"v{i}" for i in range(n)],
                            captions=captions)


def tiny_batches(dataset, seed=0, batch_size=4, sampling="random", **sampler_kw) -> TrainBatches:
    rng = np.random.default_rng(123)
    n = len(dataset)
    features = rng.standard_normal((n, 8, DV)).astype(np.float32)  # (N, T'=4*2, Dv)
    mask = np.ones((n, 8), dtype=bool)
    mask[1, 3:] = False  # a short video
    mask[2, 1:] = False  # an image
    texts = sorted({t for _, _, t in dataset.captions})
    table = TextFeatureTable(texts, torch.randn(len(texts), DT,
                                                generator=torch.Generator().manual_seed(5)))
    sampler = CaptionSampler(dataset, seed=seed, **sampler_kw)
    return TrainBatches(sampler, FeatureFrameSource(features, mask, num_frames=4), batch_size,
                        frame_sampling=sampling, text_en=table, text_ml=table)


def make_trainer(tmp_path, config: TrainConfig, crash_at_call=None, **kw) -> Trainer:
    torch.manual_seed(0)
    model = TinyModel()
    model.crash_at_call = crash_at_call
    return Trainer(model, tiny_batches(tiny_dataset(), seed=config.seed,
                                                batch_size=config.batch_size), config, tmp_path, **kw)


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


BASE = {"epochs": 4, "max_steps": 10, "batch_size": 4, "lr": 1e-2, "warmup_steps": 2, "checkpoint_every": 5,
            "progress": False, "validate": False, "seed": 3, "device": "cpu", "precision": "fp32"}


# --------------------------------------------------------------------------------- schedule

def test_warmup_cosine_known_values():
    assert warmup_cosine(0, 110, 10) == 0.0
    assert warmup_cosine(5, 110, 10) == pytest.approx(0.5)
    assert warmup_cosine(10, 110, 10) == pytest.approx(1.0)
    assert warmup_cosine(60, 110, 10) == pytest.approx(0.5)  # halfway through the cosine
    assert warmup_cosine(35, 110, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert warmup_cosine(110, 110, 10) == pytest.approx(0.0)
    assert warmup_cosine(500, 110, 10) == 0.0
    assert warmup_cosine(60, 110, 10, min_ratio=0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert warmup_cosine(0, 10, 0) == 1.0
    with pytest.raises(ValueError):
        warmup_cosine(0, 10, 11)


def test_scheduler_drives_optimizer_lr():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=0.4)
    sched = build_scheduler(opt, total_steps=8, warmup_steps=4)
    lrs = []
    for _ in range(9):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [0.0, 0.1, 0.2, 0.3, 0.4] + [0.4 * 0.5 * (1 + math.cos(math.pi * k / 4))
                                            for k in (1, 2, 3, 4)]
    assert lrs == pytest.approx(expected)


# ------------------------------------------------------------------------------------- data

def test_select_frames_uniform_random_and_short():
    assert select_frames(8, 4, "uniform").tolist() == [0, 2, 4, 6]
    assert select_frames(12, 4, "uniform").tolist() == [1, 4, 7, 10]  # segment centres
    assert select_frames(1, 4, "uniform").tolist() == [0]  # an image gives one frame
    assert select_frames(3, 4, "uniform").tolist() == [0, 1, 2]
    rng = np.random.default_rng(0)
    draws = np.stack([select_frames(12, 4, "random", rng) for _ in range(200)])
    for j in range(4):  # one frame per segment, every candidate of the segment reachable
        assert set(draws[:, j].tolist()) == {3 * j, 3 * j + 1, 3 * j + 2}


def test_caption_sampler_translate_train():
    ds = tiny_dataset()
    sampler = CaptionSampler(ds, seed=1)
    ex = sampler.epoch_examples(0)
    assert sorted(e.item for e in ex) == list(range(12))
    assert ex == sampler.epoch_examples(0)  # deterministic per epoch
    assert [e.item for e in ex] != [e.item for e in sampler.epoch_examples(1)]
    for e in ex:
        assert e.text_en.startswith(f"item {e.item} en")
        assert e.ml_language != "en" and e.text_ml == f"item {e.item} {e.ml_language}"
    langs = {e.ml_language for k in range(30) for e in sampler.epoch_examples(k)}
    assert langs == {"de", "fr", "ja"}
    restricted = CaptionSampler(ds, ml_languages=["ja"])
    assert restricted.skipped == 8 and len(restricted) == 4
    assert {e.ml_language for e in restricted.epoch_examples(0)} == {"ja"}
    en = CaptionSampler(ds, en_only=True)
    assert all(e.ml_language == "en" and " en " in e.text_ml for e in en.epoch_examples(0))
    off = CaptionSampler(ds, en_only=True, en_only_ml="disabled")
    assert off.branches == ("en",) and all(e.text_ml is None for e in off.epoch_examples(0))
    with pytest.raises(DatasetError):
        CaptionSampler(ds, ml_languages=["ko"])


def test_epoch_unit_pair_visits_every_caption_pair():
    ds = tiny_dataset()  # 12 items x 2 English captions
    assert len(CaptionSampler(ds, seed=1)) == 12
    sampler = CaptionSampler(ds, seed=1, epoch_unit="pair")
    assert len(sampler) == 24  # X-Pool: one example per (video, caption) pair
    ex = sampler.epoch_examples(0)
    pairs = sorted((i, t) for i, lang, t in ds.captions if lang == "en")
    assert sorted((e.item, e.text_en) for e in ex) == pairs
    assert all(e.text_en == f"item {e.item} en {'ab'[e.pair]}" for e in ex)
    assert ex == sampler.epoch_examples(0)  # deterministic per epoch
    assert [e.item for e in ex] != [e.item for e in sampler.epoch_examples(1)]
    for e in ex:  # one de/fr caption per item (not a per-caption translation): drawn at random
        assert e.ml_language != "en" and e.text_ml == f"item {e.item} {e.ml_language}"
    # translate-train layout (caption k of a language translates English caption k): aligned
    aligned = RetrievalDataset("t", "train", ["v0", "v1"], [
        (i, lang, f"{lang} {i} {k}") for i in range(2) for lang in ("en", "de") for k in range(3)])
    for e in CaptionSampler(aligned, epoch_unit="pair").epoch_examples(0):
        assert e.text_ml == e.text_en.replace("en", "de")
    with pytest.raises(ConfigError, match="epoch_unit"):
        CaptionSampler(ds, epoch_unit="caption")


def test_epoch_unit_pair_batches_are_resumable_and_draw_frames_per_pair():
    ds = tiny_dataset()
    data = tiny_batches(ds, sampling="random", epoch_unit="pair")
    assert data.num_batches() == 6  # 24 pairs / 4 (video: 3)
    seen = [data.batch(1, i) for i in range(6)]
    fresh = tiny_batches(ds, sampling="random", epoch_unit="pair")  # a resumed process
    for i in (4, 2):
        b = fresh.batch(1, i)
        for key in b:
            assert torch.equal(b[key], seen[i][key])
    # the two pairs of an item draw their frames independently (item 0: 8 candidates)
    frames = {}
    for e, b in zip(fresh._examples(1), torch.cat([x["frame_features"] for x in seen])):
        frames.setdefault(e.item, []).append(b)
    assert any(not torch.equal(*frames[i]) for i in range(3, 12))


def test_epoch_unit_in_train_config(m30k_dir, tmp_path, monkeypatch):
    import mumur.train.experiment as experiment
    from mumur.train import train_from_config

    assert train_config_from_dict({}).epoch_unit == "video"
    assert train_config_from_dict({"epoch_unit": "pair"}).epoch_unit == "pair"
    with pytest.raises(ConfigError, match="train.epoch_unit"):
        train_config_from_dict({"epoch_unit": "caption"})
    units = []

    class Recording(CaptionSampler):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            units.append(self.epoch_unit)

    monkeypatch.setattr(experiment, "CaptionSampler", Recording)
    train_from_config(_write_config(m30k_dir, epoch_unit="pair", max_steps=1, validate=False),
                      tmp_path / "run")
    assert units == ["pair"]


def test_logit_scale_init_is_reachable_from_a_train_config(m30k_dir):
    # CLIP4Clip / X-Pool start from CLIP's learned scale 100; the head default is CLIP's 1/0.07
    from mumur.train.experiment import build_model

    config = json.loads(_write_config(m30k_dir).read_text())
    config["model"]["overrides"]["logit_scale_init"] = math.log(100)
    model = build_model(parse_experiment_config(config, m30k_dir).model)
    assert model.head.logit_scale().item() == pytest.approx(100.0)
    assert build_model(parse_experiment_config(
        json.loads(_write_config(m30k_dir).read_text()), m30k_dir).model
    ).head.logit_scale().item() == pytest.approx(1 / 0.07)


def test_train_batches_shapes_and_determinism():
    ds = tiny_dataset()
    data = tiny_batches(ds, sampling="random")
    assert data.num_batches() == 3
    b = data.batch(0, 1)
    assert b["frame_features"].shape == (4, 4, DV) and b["mask"].shape == (4, 4)
    assert b["text_en_features"].shape == (4, DT) and b["text_ml_features"].shape == (4, DT)
    again = tiny_batches(ds, sampling="random").batch(0, 1)
    assert torch.equal(b["frame_features"], again["frame_features"])
    other = data.batch(1, 1)
    assert not torch.equal(b["frame_features"], other["frame_features"])
    off = tiny_batches(ds, en_only=True, en_only_ml="disabled").batch(0, 0)
    assert "text_ml_features" not in off


def test_pixel_frame_source_normalizes_cached_uint8():
    from mumur.media.transforms import ClipPreprocess

    pre = ClipPreprocess(image_size=6)
    frames = np.random.default_rng(0).integers(0, 256, (3, 4, 6, 6, 3), dtype=np.uint8)
    mask = np.ones((3, 4), dtype=bool)
    src = PixelFrameSource(frames, mask, num_frames=2, normalize=pre.normalize)
    out = src.get([2, 0], "uniform", [None, None])
    assert out["pixel_values"].shape == (2, 2, 3, 6, 6)
    assert torch.equal(out["pixel_values"][0, 1], pre([frames[2, 2]])[0])


def test_text_feature_cache_computes_each_caption_once(tmp_path):
    from mumur.data.feature_store import FeatureStore, store_folder, text_key, text_tag
    from mumur.data.features import cache_text_features

    seen = []

    def encode(texts):
        seen.extend(texts)
        return torch.stack([torch.full((3,), float(len(t))) for t in texts])

    def store(identity):  # as mumur.train.experiment opens it: one folder per identity
        return FeatureStore.for_texts(store_folder(tmp_path, text_tag(identity)), identity)

    out = cache_text_features(store("enc@1"), ["a", "bbb", "a"], encode)
    assert out.tolist() == [[1.0] * 3, [3.0] * 3, [1.0] * 3] and seen == ["a", "bbb"]
    reopened = store("enc@1")  # from disk: nothing recomputed
    assert np.array_equal(cache_text_features(reopened, ["bbb", "a"], encode), out[[1, 0]])
    cache_text_features(reopened, ["cc"], encode)
    assert seen == ["a", "bbb", "cc"]
    assert text_key("cc") in store("enc@1") and text_key("cc") not in store("enc@2")


# ---------------------------------------------------------------------------------- trainer

def test_resume_repeats_the_uninterrupted_loss_sequence(tmp_path):
    cfg = TrainConfig(**{**BASE, "batch_size": 3})  # 4 batches/epoch: checkpoints 4, 5, 8, 10
    straight = make_trainer(tmp_path / "straight", cfg)
    straight.fit()
    ref = read_log(tmp_path / "straight" / "log.jsonl")
    assert [r["step"] for r in ref] == list(range(1, 11))

    # Crash inside step 8: the checkpoint of step 5 is the latest; steps 6, 7 were logged.
    crashed = make_trainer(tmp_path / "run", cfg, crash_at_call=8)
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.fit()
    assert len(read_log(tmp_path / "run" / "log.jsonl")) == 7
    latest = json.loads((tmp_path / "run" / "checkpoints" / "latest.json").read_text())
    assert latest == {"checkpoint": "step_00000005"}

    resumed = make_trainer(tmp_path / "run", cfg)  # a fresh process: new model, new RNG
    torch.manual_seed(999)
    np.random.seed(999)
    resumed.fit(resume=True)
    got = read_log(tmp_path / "run" / "log.jsonl")
    assert [r["step"] for r in got] == list(range(1, 11))
    for a, b in zip(ref, got):
        for key in ("loss", "loss_en", "loss_ml", "lr", "grad_norm", "epoch"):
            assert a[key] == b[key], (a, b)
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name])


def test_log_fields_and_checkpoint_round_trip(tmp_path):
    cfg = TrainConfig(**BASE)
    trainer = make_trainer(tmp_path, cfg)
    result = trainer.fit()
    log = read_log(tmp_path / "log.jsonl")
    assert set(log[0]) == {"step", "epoch", "loss", "loss_en", "loss_ml", "lr", "grad_norm",
                           "seconds"}
    assert log[0]["lr"] == 0.0 and log[1]["lr"] == pytest.approx(5e-3)  # warm-up
    assert log[0]["loss"] == pytest.approx(log[0]["loss_en"] + log[0]["loss_ml"], rel=1e-6)
    assert [r["epoch"] for r in log] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert result.steps == 10 and (tmp_path / "model" / "model.safetensors").exists()
    ckpt = tmp_path / "checkpoints" / "step_00000010"
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "model.safetensors", "optimizer.safetensors", "trainer_state.json"]
    assert not list((tmp_path / "checkpoints").glob(".*"))  # no temporary leftovers
    # keep_checkpoints=2: older ones are gone
    assert len([p for p in (tmp_path / "checkpoints").glob("step_*")]) == 2

    other = make_trainer(tmp_path / "other", cfg)
    other.load_checkpoint(ckpt)
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, other.model.state_dict()[name])
    sa, sb = trainer.optimizer.state_dict(), other.optimizer.state_dict()
    assert sa["param_groups"] == [{**g, "betas": tuple(g["betas"])} for g in sb["param_groups"]]
    for idx, state in sa["state"].items():
        for key, value in state.items():
            assert torch.equal(value, sb["state"][idx][key])
    assert other.scheduler.last_epoch == trainer.scheduler.last_epoch == 10
    assert other.state == trainer.state
    weights = load_file(str(tmp_path / "model" / "model.safetensors"))
    assert torch.equal(weights["frame_proj.weight"], trainer.model.frame_proj.weight)

    with pytest.raises(CheckpointError):  # a run of another length cannot resume it
        make_trainer(tmp_path / "x", TrainConfig(**{**BASE, "max_steps": 9})).load_checkpoint(
            ckpt)


def test_gradient_clipping_is_applied(tmp_path):
    cfg = TrainConfig(**{**BASE, "grad_clip": 1e-3})
    trainer = make_trainer(tmp_path, cfg)
    record = trainer.train_step(trainer.train_data.batch(0, 0))
    assert record["grad_norm"] > 1e-3
    grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    assert float(total) == pytest.approx(1e-3, rel=1e-4)

    unclipped = make_trainer(tmp_path / "u", TrainConfig(**{**BASE, "grad_clip": None}))
    rec = unclipped.train_step(unclipped.train_data.batch(0, 0))
    grads = [p.grad for p in unclipped.model.parameters() if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    assert float(total) == pytest.approx(rec["grad_norm"], rel=1e-5)
    assert rec["grad_norm"] == pytest.approx(record["grad_norm"], rel=1e-5)


def test_validation_selects_best_and_stops_early(tmp_path):
    values = iter([0.5, 0.7, 0.6, 0.65, 0.9])
    cfg = TrainConfig(**{**BASE, "validate": True, "selection_metric": "t2v_R1",
                         "early_stopping_patience": 2, "max_steps": None, "epochs": 5})
    trainer = make_trainer(tmp_path, cfg, evaluate_fn=lambda m: {"t2v_R1": next(values)})
    result = trainer.fit()
    val = read_log(tmp_path / "val.jsonl")
    assert [v["value"] for v in val] == [0.5, 0.7, 0.6, 0.65]
    assert [v["best"] for v in val] == [True, True, False, False]
    assert result.stopped_early and result.best_step == 6 and result.steps == 12
    assert (tmp_path / "best" / "model.safetensors").exists()


def test_validation_loss_selection(tmp_path):
    val = tiny_batches(tiny_dataset(8, "val"), sampling="uniform")
    val.fixed = True
    cfg = TrainConfig(**{**BASE, "validate": True, "selection_metric": "val_loss"})
    trainer = make_trainer(tmp_path, cfg, val_data=val)
    trainer.fit()
    records = read_log(tmp_path / "val.jsonl")
    assert [r["step"] for r in records] == [3, 6, 9, 10]
    assert all(r["metrics"]["val_loss"] > 0 for r in records)
    best = min(records, key=lambda r: r["value"])
    assert best["best"] and trainer.state.best_step == best["step"]
    with pytest.raises(ConfigError, match="selection_metric"):
        make_trainer(tmp_path / "y", cfg)  # val_loss without validation data


def test_bf16_autocast_runs_on_cpu(tmp_path):
    cfg = TrainConfig(**{**BASE, "precision": "bf16", "max_steps": 2})
    trainer = make_trainer(tmp_path, cfg)
    assert trainer.autocast_dtype == torch.bfloat16
    trainer.fit()
    assert all(math.isfinite(r["loss"]) for r in read_log(tmp_path / "log.jsonl"))


# ----------------------------------------------------------------------------------- config

def test_bad_train_config_names_the_field():
    with pytest.raises(ConfigError, match=r"train\.lr"):
        train_config_from_dict({"lr": "fast"})
    with pytest.raises(ConfigError, match=r"train\.lr"):
        train_config_from_dict({"lr": -1})
    with pytest.raises(ConfigError, match=r"train\.batch_sise"):
        train_config_from_dict({"batch_sise": 4})
    with pytest.raises(ConfigError, match=r"train\.precision"):
        train_config_from_dict({"precision": "fp8"})
    with pytest.raises(ConfigError, match=r"train\.betas"):
        train_config_from_dict({"betas": [0.9]})
    cfg = train_config_from_dict({"betas": [0.9, 0.99], "ml_languages": ["de"], "epochs": 2})
    assert cfg.betas == (0.9, 0.99) and cfg.ml_languages == ("de",)


def test_experiment_config_paths_and_errors(tmp_path):
    (tmp_path / "corpus").mkdir()
    path = tmp_path / "exp.json"
    path.write_text(json.dumps({
        "model": {"name": "meanP", "encoders": {"text_ml": "usem3"}},
        "data": {"benchmark": "synthetic", "root": "corpus"},
        "train": {"epochs": 2}}))
    exp = load_experiment_config(path)
    assert exp.data.root == str(tmp_path / "corpus") and exp.model.encoders["text_ml"] == "usem3"
    assert exp.train.epochs == 2
    with pytest.raises(ConfigError, match=r"data\.root"):
        parse_experiment_config({"model": {"name": "meanP"},
                                 "data": {"benchmark": "x", "root": "nope"}}, tmp_path)
    with pytest.raises(ConfigError, match=r"model\.name"):
        parse_experiment_config({"model": {}, "data": {"benchmark": "x", "root": "corpus"}},
                                tmp_path)
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        parse_experiment_config({"model": {"name": "m"}, "data": {"benchmark": "x",
                                 "root": "corpus"}, "train": {"epochs": 0}}, tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_experiment_config(bad)


# ------------------------------------------------------------------------ train_from_config

def _tiny_multi30k(root):
    """Multi30K task-1 layout with 8 train / 4 val solid-colour images, en/de/fr captions."""
    from PIL import Image

    colours = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black",
               "grey", "pink", "brown", "cyan"]
    rgb = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220),
           "yellow": (230, 230, 20), "purple": (140, 20, 160), "orange": (250, 140, 0),
           "white": (250, 250, 250), "black": (5, 5, 5), "grey": (128, 128, 128),
           "pink": (250, 160, 200), "brown": (120, 70, 20), "cyan": (20, 220, 220)}
    de = {"red": "rot", "green": "grün", "blue": "blau", "yellow": "gelb", "purple": "lila",
          "orange": "orange", "white": "weiß", "black": "schwarz", "grey": "grau",
          "pink": "rosa", "brown": "braun", "cyan": "türkis"}
    task = root / "data" / "task1"
    (task / "image_splits").mkdir(parents=True)
    (task / "raw").mkdir()
    (root / "images").mkdir()
    for split, names in (("train", colours[:8]), ("val", colours[8:])):
        files = [f"{c}.jpg" for c in names]
        for c in names:
            Image.new("RGB", (40, 36), rgb[c]).save(root / "images" / f"{c}.jpg")
        (task / "image_splits" / f"{split}.txt").write_text("\n".join(files) + "\n")
        (task / "raw" / f"{split}.en").write_text("".join(f"a {c} picture\n" for c in names))
        (task / "raw" / f"{split}.de").write_text("".join(f"ein {de[c]}es Bild\n" for c in names))
        (task / "raw" / f"{split}.fr").write_text("".join(f"une image {c}\n" for c in names))


def _write_config(tmp_path, **train):
    config = {
        "model": {"name": "mumur-dcm",
                  "encoders": {"vision": {"name": "vit-small-scratch", "image_size": 32,
                                          "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                          "seed": 0},
                               "text_en": "usem3", "text_ml": "usem3"},
                  "overrides": {"embed_dim": 16, "num_frames": 2}},
        "data": {"benchmark": "multi30k", "root": "m30k"},
        "train": {"epochs": 2, "batch_size": 4, "lr": 1e-3, "checkpoint_every": 1,
                  "progress": False, "device": "cpu", "seed": 1, **train}}
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def m30k_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    _tiny_multi30k(root / "m30k")
    return root


@pytest.mark.parametrize("freeze_vision", [False, True])
def test_train_from_config_end_to_end(m30k_dir, tmp_path, freeze_vision):
    import mumur
    from mumur.train import train_from_config

    config = _write_config(m30k_dir, freeze_vision=freeze_vision)
    out = tmp_path / "run"
    result = train_from_config(config, out)
    log = read_log(out / "log.jsonl")
    assert [r["step"] for r in log] == [1, 2, 3, 4] and result.steps == 4
    assert all(r["loss_ml"] > 0 and r["loss_en"] > 0 for r in log)
    val = read_log(out / "val.jsonl")
    assert [r["step"] for r in val] == [2, 4]
    assert set(val[0]["metrics"]) >= {"t2v_R1", "SumR", "t2v_R1/en", "t2v_R1/de"}
    assert (out / "cache" / "text_features").is_dir()
    assert (out / "cache" / ("frame_features" if freeze_vision else "frames_uint8")).is_dir()
    model = mumur.load_model(out / "model")
    emb = model.encode_text(["a red picture"], branch="ml")
    assert emb.shape == (1, 16)
    assert mumur.load_model(result.best_model).config.head == "mumur-dcm"
    if freeze_vision:  # frozen encoder weights are unchanged by training
        init = build_fresh_vision()
        for k, v in init.state_dict().items():
            assert torch.equal(v, model.vision.state_dict()[k])


def build_fresh_vision():
    from mumur.encoders import load_encoder

    return load_encoder("vit-small-scratch", modality="vision", image_size=32, hidden_size=32,
                        num_layers=1, num_heads=2, seed=0)


def test_train_from_config_resume_and_bad_field(m30k_dir, tmp_path):
    from mumur.train import train_from_config

    config = _write_config(m30k_dir, validate=False, frame_sampling="random",
                           keep_checkpoints=10)
    train_from_config(config, tmp_path / "straight")
    ref = read_log(tmp_path / "straight" / "log.jsonl")
    # Run 2 steps of a 4-step run by keeping only the step-2 checkpoint, then resume.
    run = tmp_path / "run"
    train_from_config(config, run)
    ckpts = run / "checkpoints"
    (ckpts / "latest.json").write_text(json.dumps({"checkpoint": "step_00000002"}))
    assert (ckpts / "step_00000002").is_dir()
    train_from_config(config, run, resume=True)
    got = read_log(run / "log.jsonl")
    assert [r["loss"] for r in got] == [r["loss"] for r in ref]

    bad = _write_config(m30k_dir, lr="big")
    with pytest.raises(ConfigError, match=r"train\.lr"):
        train_from_config(bad, tmp_path / "bad")


def test_cli_train_reports_bad_config(m30k_dir, tmp_path):
    from typer.testing import CliRunner

    from mumur.cli import app

    bad = _write_config(m30k_dir, batch_size=0)
    result = CliRunner().invoke(app, ["train", str(bad), "--out", str(tmp_path / "run")])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError) and "train.batch_size" in str(
        result.exception)


def test_translation_file_is_merged_into_training_split(tmp_path):
    """translate-train: captions from `mumur translate`'s JSON reach the training split."""
    from mumur.data import load_benchmark
    from mumur.train.config import parse_experiment_config
    from mumur.train.experiment import _load_split

    _tiny_multi30k(tmp_path / "m30k")
    cfg = {"model": {"name": "meanP"},
           "data": {"benchmark": "multi30k", "root": "m30k", "translations": "mt.json"}}
    base = load_benchmark("multi30k", tmp_path / "m30k", split="train")
    first = base.items[0]
    (tmp_path / "mt.json").write_text(json.dumps({
        "model": "tiny-mt", "source": "en",
        "captions": {first: {"it": ["una frase tradotta"]}}}))
    exp = parse_experiment_config(cfg, tmp_path)
    dataset = _load_split(exp, "train", "train_split")
    assert (0, "it", "una frase tradotta") in dataset.captions
    assert len(dataset.captions) == len(base.captions) + 1

    missing = dict(cfg, data=dict(cfg["data"], translations="nope.json"))
    with pytest.raises(ConfigError, match="data.translations"):
        parse_experiment_config(missing, tmp_path)
