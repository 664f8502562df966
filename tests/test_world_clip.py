"""world-CLIP: single-frame facts of the synthetic world, the pretraining recipe and loop (resume
after a crash), and the shipped checkpoint loading offline through `load_encoder`."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from mumur.data.synthetic import Scene, SceneObject
from mumur.data.synthetic.frames import (
    frame_views,
    geometry_targets,
    position_phrase,
    spatial_caption,
)
from mumur.data.synthetic.render import RenderConfig, render_audio, render_frames, write_video
from mumur.errors import ConfigError

RECIPE = Path(__file__).resolve().parents[1] / "src/mumur/configs/pretrain/world-clip.json"
PACKAGED = Path(__file__).resolve().parents[1] / "src/mumur/pretrained/world-clip"

TINY = {
    "name": "tiny",
    "world": {"seed": 11, "videos": 10, "images": 4},
    "validation_world": {"seed": 12, "videos": 5, "images": 2, "test_fraction": 1.0,
                         "split": "test"},
    "evaluation_world": {"seed": 13, "videos": 6, "images": 2, "test_fraction": 0.5},
    "model": {"image_size": 32, "patch_size": 8, "vision_width": 32, "vision_layers": 1,
              "vision_heads": 2, "text_width": 32, "text_layers": 1, "text_heads": 2,
              "projection_dim": 16},
    "data": {"frames_per_video": 4, "steps_per_epoch": 3, "workers": 1},
    "train": {"max_steps": 6, "batch_size": 8, "warmup_steps": 2, "checkpoint_every": 2,
              "keep_checkpoints": 10, "log_every": 1, "selection_metric": "zero_shot_R1",
              "device": "cpu", "precision": "fp32", "progress": False},
}


def _obj(shape="circle", colour="red", size="large", motion="moves right", x=0.3, y=0.5,
         angle=0.0):
    return SceneObject(shape, colour, size, motion, None, x, y, angle)


# ------------------------------------------------------------------------- single-frame facts

@pytest.mark.parametrize("x, y, phrase", [
    (0.1, 0.1, "at the top left"), (0.5, 0.1, "at the top"), (0.9, 0.2, "at the top right"),
    (0.1, 0.5, "on the left"), (0.5, 0.5, "in the centre"), (0.8, 0.5, "on the right"),
    (0.2, 0.9, "at the bottom left"), (0.5, 0.7, "at the bottom"),
    (0.99, 0.99, "at the bottom right"),
])
def test_position_phrase(x, y, phrase):
    assert position_phrase(x, y) == phrase


def test_spatial_caption_follows_the_motion():
    scene = Scene("video", "beach", (_obj(x=0.32, y=0.5),))  # moves right by 0.35, to 0.67
    rng = np.random.default_rng(0)
    start, end = spatial_caption(scene, 0.0, rng), spatial_caption(scene, 1.0, rng)
    assert "large red circle on the left" in start and "on the beach" in start.lower()
    assert "large red circle on the right" in end


def test_geometry_slots_are_ordered_by_what_is_visible():
    a = _obj("star", "blue", "small", "stays still", 0.2, 0.2, 90.0)
    b = _obj("circle", "red", "large", "grows", 0.7, 0.6, 0.0)
    g1 = geometry_targets(Scene("video", "snow", (a, b)), 1.0)
    g2 = geometry_targets(Scene("video", "snow", (b, a)), 1.0)
    assert np.array_equal(g1, g2)  # the main object is not visible as such: order by shape
    assert g1[0, :3].tolist() == pytest.approx([1.0, 0.7, 0.6])  # circle before star
    assert g1[0, 3] == pytest.approx(0.18 * 1.25)  # grown to 1.25 x at the end
    assert g1[1, 4:].tolist() == pytest.approx([0.0, 1.0], abs=1e-6)  # 90 degrees
    assert g1[2].tolist() == [0.0] * 6


def test_cached_frames_and_times_match_the_rendered_geometry(tmp_path):
    """The pretraining cache decodes like evaluation and maps each sampled frame to the clip
    time the renderer drew it at: the red object's pixel centroid sits where `frame_views`
    says."""
    from mumur.train.pretrain.frames import _decode_item

    cfg = RenderConfig()
    scene = Scene("video", "grass", (_obj(x=0.3, y=0.4),))
    rng = np.random.default_rng(1)
    path = tmp_path / "clip.mp4"
    write_video(path, render_frames(scene, rng, cfg), render_audio(scene, rng, cfg), cfg)
    crops, times = _decode_item((str(path), 12, 64, cfg.fps, cfg.num_frames))
    assert crops.shape == (12, 64, 64, 3) and crops.dtype == np.uint8
    assert np.all(np.diff(times) > 0) and times[0] > 0 and times[-1] == 1.0
    for crop, t in zip(crops, times):
        red = (crop[..., 0] > 170) & (crop[..., 1] < 90) & (crop[..., 2] < 90)
        ys, xs = np.nonzero(red)
        view = frame_views(scene, float(t))[0]
        assert abs((xs.mean() + 0.5) / 64 - view.x) < 0.03
        assert abs((ys.mean() + 0.5) / 64 - view.y) < 0.05  # the marker dot sits above centre


# ----------------------------------------------------------------------------------- recipe

def test_packaged_recipe_parses_and_separates_worlds():
    from mumur.train.pretrain import load_recipe, recipe_from_dict

    recipe = load_recipe(RECIPE)
    assert recipe.name == "world-clip"
    seeds = {recipe.world.seed, recipe.validation_world.seed, recipe.evaluation_world.seed}
    assert len(seeds) == 3
    config = recipe.model.clip_config()
    assert config.vision_config.image_size == recipe.model.image_size
    bad = json.loads(RECIPE.read_text())
    bad["evaluation_world"]["seed"] = bad["world"]["seed"]
    with pytest.raises(ConfigError, match="different seeds"):
        recipe_from_dict(bad)
    bad = json.loads(RECIPE.read_text())
    bad["model"]["width"] = 3
    with pytest.raises(ConfigError, match="width"):
        recipe_from_dict(bad)


def test_true_pair_mask():
    from mumur.train.pretrain.frames import _SPATIAL, _true_pair_mask

    source = [0, 0, 0, 1]
    kinds = [_SPATIAL, _SPATIAL, 1, _SPATIAL]
    cells = [("a",), ("b",), ("a",), ("a",)]
    texts = ["x left", "x right", "a photo of x", "x left"]
    mask = _true_pair_mask(source, kinds, cells, texts).numpy()
    expected = np.array([
        [0, 0, 1, 1],  # image 0: the template of its own video is true; text 3 is the same text
        [0, 0, 1, 0],  # image 1: other cells, so text 0 ("left") is a real negative
        [1, 0, 0, 0],  # image 2 (cells a): text 0 names its cells
        [1, 0, 0, 0],
    ], bool)
    assert np.array_equal(mask, expected)


@pytest.fixture(scope="module")
def tiny_recipe(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pretrain")
    path = folder / "tiny.json"
    path.write_text(json.dumps(TINY))
    return path, folder / "cache"


def _log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_pretrain_runs_checkpoints_and_resumes_after_a_crash(tiny_recipe, tmp_path,
                                                             monkeypatch):
    from mumur import load_encoder
    from mumur.train import pretrain as module

    recipe, cache = tiny_recipe
    straight = module.pretrain(recipe, tmp_path / "straight", cache_dir=cache)
    ref = _log(tmp_path / "straight")
    assert [r["step"] for r in ref] == list(range(1, 7)) and straight.best_model is not None
    assert all(np.isfinite(r["loss"]) for r in ref)
    val = [json.loads(x) for x in (tmp_path / "straight" / "val.jsonl").read_text().splitlines()]
    assert [v["step"] for v in val] == [3, 6] and "zero_shot_R1" in val[0]["metrics"]

    calls = {"n": 0}
    original = module.PretrainBatches.batch

    def crashing(self, epoch, index):
        calls["n"] += 1
        if calls["n"] == 6:  # inside step 6 (after the step-4 checkpoint was written)
            raise RuntimeError("simulated crash")
        return original(self, epoch, index)

    monkeypatch.setattr(module.PretrainBatches, "batch", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        module.pretrain(recipe, tmp_path / "run", cache_dir=cache)
    monkeypatch.setattr(module.PretrainBatches, "batch", original)
    latest = json.loads((tmp_path / "run" / "checkpoints" / "latest.json").read_text())
    assert latest == {"checkpoint": "step_00000004"}
    torch.manual_seed(123)
    module.pretrain(recipe, tmp_path / "run", cache_dir=cache)  # resumes by default
    got = _log(tmp_path / "run")
    assert [r["step"] for r in got] == list(range(1, 7))
    for a, b in zip(ref, got):
        assert a["loss"] == b["loss"] and a["grad_norm"] == b["grad_norm"]
    # The run's best/ is an ordinary CLIP folder, loadable like any checkpoint.
    encoder = load_encoder(str(tmp_path / "run" / "model"), modality="text")
    reference = load_encoder(str(tmp_path / "straight" / "model"), modality="text")
    texts = ["A small red star at the top left, on the beach."]
    assert torch.equal(encoder.encode(texts), reference.encode(texts))


def test_export_writes_fp16_clip_folder(tiny_recipe, tmp_path):
    from safetensors import safe_open

    from mumur import load_encoder
    from mumur.train.pretrain import export_clip_folder, pretrain

    recipe, cache = tiny_recipe
    result = pretrain(recipe, tmp_path / "run", cache_dir=cache)
    dest = export_clip_folder(result.final_model, tmp_path / "export")
    with safe_open(str(dest / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    full = load_encoder(str(result.final_model), modality="text")
    half = load_encoder(str(dest), modality="text")
    texts = ["A large blue heart in the centre, in the snow."]
    assert torch.allclose(full.encode(texts), half.encode(texts), atol=5e-3)
    assert next(half.parameters()).dtype == torch.float32


def test_cli_pretrain_on_tiny_recipe(tiny_recipe, tmp_path):
    from typer.testing import CliRunner

    from mumur.cli import app

    recipe, cache = tiny_recipe
    result = CliRunner().invoke(app, ["pretrain", str(recipe), "--out", str(tmp_path / "run"),
                                      "--cache", str(cache), "--export",
                                      str(tmp_path / "export")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "export" / "config.json").is_file()
    assert "pretrained 6 steps" in result.output


# ------------------------------------------------------------------------- shipped weights

@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _images(n=3, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
            for _ in range(n)]


def test_world_clip_loads_offline_like_a_clip_folder(no_network):
    from transformers import CLIPModel

    from mumur import load_encoder
    from mumur.encoders import ClipTextEncoder, ClipVisionEncoder, list_encoders

    assert "world-clip" in list_encoders()
    vision = load_encoder("world-clip", modality="vision")
    text = load_encoder("world-clip", modality="text")
    assert isinstance(vision, ClipVisionEncoder) and isinstance(text, ClipTextEncoder)
    assert vision.identity.startswith("clip-vision:world-clip@")
    images, texts = _images(), ["A small red star on the beach.", "A large blue circle at night."]
    v, t = vision.encode(images), text.encode(texts)
    assert v.shape == (3, vision.dim) and t.shape == (2, text.dim) and v.dtype == torch.float32
    assert torch.allclose(v.norm(dim=1), torch.ones(3)) and torch.allclose(t.norm(dim=1),
                                                                          torch.ones(2))
    # The same numbers as transformers' own CLIPModel on the same folder.
    clip = CLIPModel.from_pretrained(str(PACKAGED)).float().eval()
    with torch.no_grad():
        ref_v = clip.get_image_features(pixel_values=vision.preprocess(images)).pooler_output
        tokens = text.tokenizer(texts, padding=True, return_tensors="pt")
        ref_t = clip.get_text_features(**tokens).pooler_output
    assert torch.allclose(torch.nn.functional.normalize(ref_v, dim=-1), v, atol=1e-5)
    assert torch.allclose(torch.nn.functional.normalize(ref_t, dim=-1), t, atol=1e-5)
    assert not torch.allclose(v[0], v[1])


def test_world_clip_is_a_small_fp16_folder_with_a_card():
    size = (PACKAGED / "model.safetensors").stat().st_size
    assert size < 30 * 2**20
    config = json.loads((PACKAGED / "config.json").read_text())
    assert config["model_type"] == "clip"
    card = (PACKAGED / "README.md").read_text()
    assert "mumur pretrain" in card and "1001" in card


def test_world_clip_tells_colours_apart_zero_shot(no_network):
    """A retrieval check that a random or broken checkpoint fails: render one-object images of
    each colour and rank the colour captions."""
    from mumur import load_encoder
    from mumur.data.synthetic.render import render_image
    from mumur.data.synthetic.world import COLOURS

    cfg = RenderConfig()
    images = [render_image(Scene("image", "grass", (_obj(colour=c, x=0.5, y=0.5),)),
                           np.random.default_rng(k), cfg) for k, c in enumerate(COLOURS)]
    vision = load_encoder("world-clip", modality="vision")
    text = load_encoder("world-clip", modality="text")
    sim = text.encode([f"A large {c} circle on the grass." for c in COLOURS]) @ \
        vision.encode(images).T
    assert (sim.argmax(1) == torch.arange(len(COLOURS))).float().mean() >= 0.75


# ----------------------------------------------------------------------------------- report

def test_probes_known_answers():
    from mumur.train.pretrain_report import fit_logistic_probe, fit_ridge_probe

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    x = torch.as_tensor(np.eye(3)[labels] * 2 + rng.normal(0, 0.3, (300, 3)), dtype=torch.float32)
    assert fit_logistic_probe(x[:200], labels[:200], x[200:], labels[200:]) > 95
    noise = torch.randn(300, 3)
    assert fit_logistic_probe(noise[:200], labels[:200], noise[200:], labels[200:]) < 55
    w = rng.normal(size=(3, 2))
    y = x.numpy() @ w
    assert min(fit_ridge_probe(x[:200], y[:200], x[200:], y[200:], l2=1e-6)) > 0.99
    assert max(fit_ridge_probe(noise[:200], y[:200], noise[200:], y[200:])) < 0.1


def test_report_and_card_on_a_tiny_run(tiny_recipe, tmp_path):
    from mumur.train.pretrain import export_clip_folder, pretrain
    from mumur.train.pretrain_report import pretrain_report

    recipe, cache = tiny_recipe
    result = pretrain(recipe, tmp_path / "run", cache_dir=cache)
    folder = export_clip_folder(result.best_model, tmp_path / "export")
    out, card = tmp_path / "report.json", tmp_path / "export" / "README.md"
    report = pretrain_report(str(folder), recipe, out, cache, progress=False, card=card)
    assert json.loads(out.read_text()) == report
    manifest = json.loads((cache / "world-13" / "world" / "manifest.json").read_text())
    test_items = [i for i in manifest["items"] if i["split"] == "test"]
    assert report["zero_shot"]["all"]["n_candidates"] == len(test_items)
    assert report["zero_shot"]["videos"]["n_candidates"] == sum(
        i["type"] == "video" for i in test_items)
    assert set(report["probe"]) == {"model", "random_init"}
    text = card.read_text()
    assert "mumur pretrain" in text and "world seed 13" in text and "| step |" in text
