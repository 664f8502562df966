"""Multilingual knowledge distillation (`mumur distill`): eq. 5, parallel pairs, students that save
and load through `load_encoder`, exact resume after a crash, the evaluation metrics, bad recipes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mumur.data.synthetic.parallel import (
    BitextGroup,
    caption_bitext,
    parallel_pairs,
    template_pairs,
)
from mumur.data.synthetic.world import Scene, SceneObject
from mumur.errors import ConfigError

SRC = Path(__file__).resolve().parents[1] / "src"


def _recipe(tmp_path, teacher, **changes) -> Path:
    recipe = {
        "name": "tiny-m-clip", "teacher": str(teacher),
        "student": {"kind": "scratch-transformer", "vocab_size": 400, "hidden_size": 32,
                    "layers": 1, "heads": 2, "intermediate_size": 64, "max_length": 48},
        "world": {"seed": 11, "videos": 12, "images": 4},
        "validation_world": {"seed": 12, "videos": 6, "images": 2, "test_fraction": 1.0,
                             "split": "test"},
        "evaluation_world": {"seed": 13, "videos": 6, "images": 2, "test_fraction": 1.0,
                             "split": "test"},
        "languages": ["en", "de", "ja", "th"], "steps_per_epoch": 4, "val_pairs": 32,
        "eval_frames": 3,
        "train": {"max_steps": 8, "batch_size": 8, "lr": 1e-3, "device": "cpu",
                  "precision": "fp32", "checkpoint_every": 2, "log_every": 1,
                  "progress": False},
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(recipe.get(key), dict):
            recipe[key] = {**recipe[key], **value}
        else:
            recipe[key] = value
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    return path


# ------------------------------------------------------------------------------- eq. 5

def test_distill_loss_is_eq5_mse_known_answer():
    from mumur.train.distill import DistillLoss, DistillModule

    student = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    teacher = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    # squared differences 1, 4, 4, 9 -> mean 4.5
    assert DistillLoss()(student, teacher).item() == pytest.approx(4.5)
    with pytest.raises(ValueError, match="differ in shape"):
        DistillLoss()(student, teacher[:, :1])

    class Identity(torch.nn.Module):
        def project(self, x):
            return x

    out = DistillModule(Identity()).compute_loss(
        {"student_features": student, "teacher": teacher,
         "is_english": torch.tensor([True, False])})
    assert out.loss.item() == pytest.approx(4.5)
    assert out.loss_en.item() == pytest.approx(2.5)  # (1 + 4) / 2
    assert out.loss_ml.item() == pytest.approx(6.5)  # (4 + 9) / 2


# ------------------------------------------------------------------------------- parallel text

def _scene(sound):
    obj = SceneObject("circle", "red", "large", "moves left", sound, 0.5, 0.5, 0.0)
    return Scene("video", "beach", (obj,))


def test_template_pairs_match_facts_including_the_sound_template():
    pairs = template_pairs(_scene("beeps"), "de", with_size=True)
    sources = {p.target: p.source for p in pairs}
    sound_targets = [t for t in sources if "piept" in t]
    assert sound_targets, sources
    for target, source in sources.items():
        # a German caption naming the sound is paired with an English one naming it, and only then
        assert ("beeps" in source) == ("piept" in target), (source, target)
        assert "large red circle" in source and "left" in source
    silent = template_pairs(_scene(None), "de", with_size=False)
    assert all("large" not in p.source and "beeps" not in p.source for p in silent)
    # English pairs are the identity
    assert all(p.source == p.target for p in template_pairs(_scene("hums"), "en", True))


def test_manifest_captions_are_not_index_aligned_so_pairs_come_from_scenes():
    from mumur.data.synthetic import SynthConfig, build_manifest

    manifest = build_manifest(SynthConfig(videos=20, images=5, seed=3, val_fraction=0.0,
                                          test_fraction=0.0, languages=("en", "de", "fr")))
    # Caption counts per language differ for some item: index i cannot be a translation pair.
    assert any(len(it["captions"]["en"]) != len(it["captions"]["de"])
               for it in manifest["items"])
    pairs = parallel_pairs(manifest, ["en", "de", "fr"])
    targets = {p.target for p in pairs}
    # every manifest caption is a target of a derived pair (the pairs cover the world's text)
    for item in manifest["items"]:
        for lang in ("en", "de", "fr"):
            assert set(item["captions"][lang]) <= targets
    assert len(pairs) == len(set(pairs))
    with pytest.raises(ValueError, match="xx"):
        parallel_pairs(manifest, ["en", "xx"])


def test_caption_bitext_groups_by_item_and_shot():
    manifest = {"languages": ["en", "de"], "items": [
        {"id": "a", "split": "test", "type": "video", "captions": {"en": ["A0", "A1"],
                                                                  "de": ["a1", "a0"]},
         "caption_shots": {"en": [0, 1], "de": [1, 0]}},
        {"id": "b", "split": "train", "type": "image", "captions": {"en": ["B"], "de": ["b"]}},
        {"id": "c", "split": "test", "type": "image", "captions": {"en": ["C"], "de": ["c"]}},
    ]}
    items, groups = caption_bitext(manifest, "test")
    assert [it["id"] for it in items] == ["a", "c"]
    by_key = {g.key: g for g in groups}
    assert by_key[("a", 0)].captions == {"en": "A0", "de": "a0"}
    assert by_key[("a", 1)].captions == {"en": "A1", "de": "a1"}
    assert by_key[("c", None)].item == 1


# ------------------------------------------------------------------------------- metrics

class _TableEncoder(torch.nn.Module):
    """A text 'encoder' that looks sentences up in a table (for known-answer metrics)."""

    def __init__(self, table: dict[str, list[float]]):
        super().__init__()
        self.table = table
        self.dim = len(next(iter(table.values())))

    def forward(self, texts):
        return torch.tensor([self.table[t] for t in texts])


def test_bitext_and_t2v_metrics_known_answers():
    from mumur.eval.bitext import bitext_retrieval, crosslingual_t2v, teacher_mse

    groups = [BitextGroup(i, (str(i), None), {"en": f"e{i}", "de": f"d{i}"}) for i in range(3)]
    onehot = {f"{p}{i}": [float(i == j) for j in range(3)] for p in "ed" for i in range(3)}
    good = _TableEncoder(onehot)
    scores = bitext_retrieval(good, groups, ["en", "de"], seen={"d0"})
    assert scores["de"]["R1"] == 100.0 and "en" not in scores
    assert scores["de"]["n_unseen"] == 2 and scores["de"]["R1_unseen"] == 100.0
    # German sentences all map to one vector: pessimistic ties give the worst rank, never R@1
    constant = _TableEncoder({**onehot, **{f"d{i}": [1.0, 1.0, 1.0] for i in range(3)}})
    assert bitext_retrieval(constant, groups, ["de"])["de"]["R1"] == 0.0
    # item 2's embedding is swapped with item 1's: the de captions of 1 and 2 miss
    items = np.eye(3, dtype=np.float32)[[0, 2, 1]]
    t2v = crosslingual_t2v(good, groups, items, ["de"])["de"]
    assert t2v["R1"] == pytest.approx(100 / 3) and t2v["n_queries"] == 3
    # items 1 and 2 swapped: d1 scores 1 on item 2 and ties item 0 at 0: pessimistic rank 3
    assert t2v["ranks"] == [1, 3, 3]
    lo, hi = t2v["R1_ci95"]
    assert 0.0 <= lo <= t2v["R1"] <= hi <= 100.0 and hi > lo
    assert scores["de"]["R1_ci95"] == [100.0, 100.0]  # every resample is all hits
    mse = teacher_mse(constant, good, groups, ["de"])["de"]
    assert mse["mse"] == pytest.approx(2 / 3)  # rows (0,1,1),(1,0,1),(1,1,0): 2 of 3 squared


# ------------------------------------------------------------------------------- students

def test_tokenizer_is_trained_and_saved_with_the_scratch_student(tmp_path):
    from mumur.encoders import load_encoder
    from mumur.encoders.text import MClipTextEncoder
    from mumur.train.distill import StudentSpec, build_student

    sentences = ["A large red circle moves left on the beach.", "Ein großer roter Kreis.",
                 "ビーチで大きな赤い円が左に動く。", "วงกลมสีแดงขนาดใหญ่เคลื่อนที่ไปทางซ้าย"] * 20
    spec = StudentSpec(kind="scratch-transformer", vocab_size=120, hidden_size=16, layers=1,
                       heads=2, intermediate_size=32, max_length=32)
    student = build_student(spec, teacher_dim=8, sentences=sentences, seed=0)
    assert len(student.tokenizer) <= 120
    ids = student.tokenizer(sentences[2])["input_ids"]
    assert student.tokenizer.unk_token_id not in ids  # Japanese is covered by the new vocabulary
    folder = student.save(tmp_path / "student")
    assert (folder / "tokenizer.json").exists()
    assert json.loads((folder / "config.json").read_text())["model_type"] == "M-CLIP"
    loaded = load_encoder(folder, modality="text")
    assert isinstance(loaded, MClipTextEncoder) and loaded.dim == 8
    assert loaded.tokenizer(sentences[3])["input_ids"] == student.tokenizer(sentences[3])[
        "input_ids"]
    torch.testing.assert_close(loaded.encode(sentences[:4]), student.encode(sentences[:4]))


def test_usem3_adapter_student_saves_and_loads_same_embeddings(tmp_path):
    from mumur.encoders import load_encoder
    from mumur.encoders.adapter import AdapterTextEncoder
    from mumur.train.distill import StudentSpec, build_student

    student = build_student(StudentSpec(kind="usem3-adapter", hidden_dim=16), teacher_dim=8)
    assert not any(p.requires_grad for p in student.base.parameters())
    texts = ["a red circle on the beach", "ein roter Kreis am Strand"]
    folder = student.save(tmp_path / "adapter")
    loaded = load_encoder(folder, modality="text")
    assert isinstance(loaded, AdapterTextEncoder) and loaded.dim == 8
    torch.testing.assert_close(loaded.encode(texts), student.encode(texts))
    with pytest.raises(Exception, match="text"):
        load_encoder(folder, modality="vision")


# ------------------------------------------------------------------------------- the command

def _log_losses(run: Path) -> list[tuple[int, float]]:
    lines = (run / "log.jsonl").read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines)]


def test_distill_resumes_exactly_after_a_crash(tmp_path, tiny_clip_checkpoint, monkeypatch):
    from safetensors.torch import load_file

    from mumur.encoders import load_encoder
    from mumur.train import distill as distill_module
    from mumur.train.distill import distill, load_recipe

    recipe = load_recipe(_recipe(tmp_path, tiny_clip_checkpoint[0]))
    full = distill(recipe, tmp_path / "full", evaluate=False)
    assert full["steps"] == 8 and full["data"]["tokenizer_vocab"] <= 400
    assert (tmp_path / "full" / "checkpoints" / "latest.json").exists()

    original = distill_module.DistillModule.compute_loss
    calls = {"n": 0}

    def crashing(self, batch):
        if self.training:
            calls["n"] += 1
            if calls["n"] == 6:  # inside step 6: the latest checkpoint is step 4
                raise RuntimeError("simulated crash")
        return original(self, batch)

    monkeypatch.setattr(distill_module.DistillModule, "compute_loss", crashing)
    # The unigram tokenizer trainer is not deterministic across runs; a run keeps its tokenizer,
    # so the crashed run starts from the full run's to be comparable step by step.
    shutil.copytree(tmp_path / "full" / "tokenizer", tmp_path / "crashed" / "tokenizer")
    with pytest.raises(RuntimeError, match="simulated crash"):
        distill(recipe, tmp_path / "crashed", evaluate=False)
    monkeypatch.setattr(distill_module.DistillModule, "compute_loss", original)
    assert json.loads((tmp_path / "crashed" / "checkpoints" / "latest.json").read_text()) == {
        "checkpoint": "step_00000004"}
    resumed = distill(recipe, tmp_path / "crashed", resume=True, evaluate=False)
    assert resumed["steps"] == 8
    assert _log_losses(tmp_path / "crashed") == _log_losses(tmp_path / "full")
    a = load_file(str(tmp_path / "full" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "crashed" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the student trained: the loss fell, and the saved student is a loadable encoder
    losses = [loss for _, loss in _log_losses(tmp_path / "full")]
    assert losses[-1] < losses[0]
    student = load_encoder(tmp_path / "full" / "model", modality="text")
    assert student.encode(["Ein roter Kreis."]).shape == (1, 16)
    # resuming with another recipe is refused
    other = load_recipe(_recipe(tmp_path, tiny_clip_checkpoint[0], steps_per_epoch=3))
    with pytest.raises(ConfigError, match="another recipe"):
        distill(other, tmp_path / "crashed", resume=True, evaluate=False)


def test_cli_distill_end_to_end_with_evaluation(tmp_path, tiny_clip_checkpoint):
    from typer.testing import CliRunner

    from mumur.cli import app

    recipe = _recipe(tmp_path, tiny_clip_checkpoint[0], student={"kind": "usem3-adapter",
                                                                  "hidden_dim": 16},
                     train={"max_steps": 4})
    result = CliRunner().invoke(app, ["distill", str(recipe), "--out", str(tmp_path / "run"),
                                      "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    assert "t2v R@1" in result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["steps"] == 3 and "--max-steps 3" in results["command"]
    evaluation = results["evaluation"]
    assert set(evaluation["languages"]) == {"en", "de", "ja", "th"}
    assert evaluation["languages"]["de"]["t2v"]["n_candidates"] == evaluation["world"]["items"]
    assert evaluation["languages"]["en"]["bitext_R1"] is None  # en -> en is not scored
    assert 0 <= evaluation["mean_non_en"]["bitext_R1"] <= 100

    report = tmp_path / "report" / "world-m-clip.json"
    shipped = tmp_path / "shipped"
    result = CliRunner().invoke(app, ["distill-report", str(tmp_path / "run"), "--out",
                                      str(report), "--ship", str(tmp_path / "run"),
                                      "--ship-to", str(shipped)])
    assert result.exit_code == 0, result.output
    table = json.loads(report.read_text())
    assert table["students"][0]["student"] == "usem3-adapter"
    assert report.with_suffix(".md").exists()
    assert (shipped / "MODEL_CARD.md").exists() and (shipped / "adapter.safetensors").exists()


@pytest.mark.parametrize("change, reason", [
    ({"student": {"kind": "lstm"}}, "student.kind"),
    ({"oops": 1}, "unknown recipe key"),
    ({"validation_world": {"seed": 11}}, "different seeds"),
    ({"train": {"lr": -1}}, "train.lr"),
])
def test_bad_recipe_is_one_line_error(tmp_path, change, reason):
    recipe = _recipe(tmp_path, "unused-teacher", **change)
    proc = subprocess.run([sys.executable, "-m", "mumur", "distill", str(recipe), "--out",
                           str(tmp_path / "run")], capture_output=True, text=True,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0], proc.stderr


def test_packaged_recipes_parse():
    from mumur.train.distill import load_recipe

    for name in ("world-m-clip-usem3", "world-m-clip-scratch"):
        recipe = load_recipe(name)
        assert recipe.world.seed != recipe.evaluation_world.seed
        assert recipe.train.selection_metric == "val_loss"


def test_warm_start_copies_a_saved_student_and_rejects_another_shape(tmp_path):
    from mumur.train.distill import StudentSpec, build_student
    from mumur.train.distill.students import _warm_start

    sentences = ["a red circle", "ein roter Kreis", "un cercle rouge"] * 10
    spec = StudentSpec(kind="scratch-transformer", vocab_size=60, hidden_size=16, layers=1,
                       heads=2, intermediate_size=32, max_length=32)
    saved = build_student(spec, 8, sentences, seed=1)
    folder = saved.save(tmp_path / "saved")
    fresh = build_student(spec, 8, seed=2, tokenizer=saved.tokenizer)
    assert not torch.allclose(fresh.encode(sentences[:3]), saved.encode(sentences[:3]))
    _warm_start(fresh, str(folder))
    torch.testing.assert_close(fresh.encode(sentences[:3]), saved.encode(sentences[:3]))
    wider = build_student(StudentSpec(**{**spec.__dict__, "hidden_size": 32}), 8,
                          tokenizer=saved.tokenizer)
    with pytest.raises(ConfigError, match="does not match"):
        _warm_start(wider, str(folder))


# ------------------------------------------------------------------------------- shipped student

def test_shipped_world_m_clip_loads_by_name_and_matches_translations():
    from mumur.data.synthetic.captions import caption_templates
    from mumur.encoders import PACKAGED_CHECKPOINTS, load_encoder, packaged_checkpoint

    assert "world-m-clip" in PACKAGED_CHECKPOINTS
    folder = Path(packaged_checkpoint("world-m-clip"))
    assert (folder / "MODEL_CARD.md").exists()
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 30e6
    encoder = load_encoder("world-m-clip", modality="text")
    scenes = [Scene("video", place, (SceneObject(shape, colour, size, motion, None, 0.5, 0.5,
                                                 0.0),))
              for place, shape, colour, size, motion in [
                  ("beach", "circle", "red", "large", "moves left"),
                  ("snow", "star", "blue", "small", "rotates"),
                  ("night", "heart", "yellow", "large", "moves up"),
                  ("grass", "triangle", "green", "small", "shrinks")]]
    english = [caption_templates(s, "en")[0] for s in scenes]
    for lang in ("de", "ja", "ar"):
        other = [caption_templates(s, lang)[1] for s in scenes]
        sim = encoder.encode(other) @ encoder.encode(english).T  # (4, 4)
        assert torch.equal(sim.argmax(dim=1), torch.arange(4)), (lang, sim)


def test_cached_world_of_other_languages_is_rendered_again(tmp_path):
    # A pretraining world of the same seed is English-only; the evaluation world needs every
    # language, so a cached English-only manifest must not be reused silently.
    from mumur.data.synthetic import generate
    from mumur.train.distill.data import world_manifest
    from mumur.train.distill.recipe import WorldSpec

    spec = WorldSpec(seed=5, videos=4, images=2, test_fraction=1.0, split="test")
    generate(tmp_path / "world-5", spec.synth_config(["en"]), workers=1, progress=False)
    manifest, folder = world_manifest(spec, ["en", "de"], tmp_path, media=True, progress=False)
    assert folder == tmp_path / "world-5"
    assert manifest["languages"] == ["en", "de"]
    assert json.loads((folder / "manifest.json").read_text())["languages"] == ["en", "de"]
    again, _ = world_manifest(spec, ["en", "de"], tmp_path, media=True, progress=False)
    assert again == manifest
