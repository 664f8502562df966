"""CPU inference backends of the towers (encoders/fast.py): each agrees with fp32 or is refused."""

from __future__ import annotations

import pytest
import torch

from mumur.encoders import load_encoder
from mumur.encoders.fast import (
    BACKENDS,
    accelerate,
    bf16_supported,
    choose_backend,
    probe_inputs,
    restore,
)

TEXTS = ["a red square", "ein blauer Kreis im Schnee", "два жёлтых треугольника"]


def _cos(a, b):
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


@pytest.mark.parametrize("modality", ["vision", "text"])
def test_every_backend_agrees_with_fp32_on_a_real_layout_clip(tiny_clip_checkpoint, modality):
    encoder = load_encoder(str(tiny_clip_checkpoint[0]), modality)
    choice, passed = choose_backend(encoder, BACKENDS, repeats=1)
    expected = {"fp32", "int8", "onnx"} | ({"bf16"} if bf16_supported() else set())
    assert set(passed) == expected, choice.report
    assert choice.report["fp32"]["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert choice.report["onnx"]["cosine"] > 0.9999  # the same graph, other kernels
    assert choice.report["int8"]["cosine"] < 1.0  # quantisation did something
    assert choice.backend in passed and choice.report[choice.backend]["seconds"] == min(
        r["seconds"] for r in choice.report.values() if r["passed"])


@pytest.mark.parametrize("backend", ["int8", "onnx"])
def test_accelerated_encode_stays_within_the_guard_and_restore_is_exact(tiny_clip_checkpoint,
                                                                        backend):
    text = load_encoder(str(tiny_clip_checkpoint[0]), "text")
    vision = load_encoder(str(tiny_clip_checkpoint[0]), "vision")
    pixels = probe_inputs(vision, batch=3, seed=4)[0]
    ref_t, ref_v = text.encode(TEXTS), vision.encode(pixels)
    identity = vision.identity
    assert accelerate(text, backend).backend == backend
    assert accelerate(vision, backend).backend == backend
    assert vision.inference_backend == backend and vision.identity == identity
    assert _cos(text.encode(TEXTS), ref_t).min() >= 0.99
    assert _cos(vision.encode(pixels), ref_v).min() >= 0.99
    restore(text)
    restore(vision)
    torch.testing.assert_close(text.encode(TEXTS), ref_t)
    torch.testing.assert_close(vision.encode(pixels), ref_v)


def test_a_backend_below_the_bar_is_refused_and_auto_falls_back(tiny_clip_checkpoint):
    encoder = load_encoder(str(tiny_clip_checkpoint[0]), "text")
    with pytest.raises(ValueError, match="refused"):
        accelerate(encoder, "int8", min_cosine=1.0 + 1e-9)  # nothing is that exact
    assert "forward" not in encoder.__dict__
    choice = accelerate(encoder, "auto", min_cosine=1.0 + 1e-9, repeats=1)
    assert choice.backend == "fp32" and not any(r["passed"] for r in choice.report.values())
    with pytest.raises(ValueError, match="unknown backend"):
        accelerate(encoder, "fp8")


def test_shipped_world_stack_towers_pass_the_guard_on_every_backend():
    for source, modality in [("world-clip", "vision"), ("world-clip", "text"),
                             ("world-m-clip", "text")]:
        encoder = load_encoder(source, modality)
        choice, passed = choose_backend(encoder, ("fp32", "int8", "onnx"), repeats=1)
        assert set(passed) == {"fp32", "int8", "onnx"}, (source, modality, choice.report)
        assert choice.report["onnx"]["cosine"] > 0.9999


def test_mumur_index_with_a_backend_reports_it_and_searches(tiny_clip_checkpoint, palette_corpus,
                                                            tmp_path):
    from mumur.index import Index, build_index

    index = tmp_path / "index"
    report = build_index([palette_corpus], index, str(tiny_clip_checkpoint[0]), num_workers=0,
                         progress=False, backend="onnx")
    assert report.backend == "onnx" and report.to_dict()["backend"] == "onnx"
    again = build_index([palette_corpus], index, num_workers=0, progress=False, backend="auto")
    assert again.backend == "fp32"  # nothing to embed: nothing measured
    idx = Index(index, text_backend="int8")
    assert idx.search("a red square", k=3).results
    tower = idx.embedder.model._text_encoder(idx.default_branch())
    assert tower.inference_backend == "int8"
    idx.close()


def test_a_tower_the_probe_cannot_run_stays_fp32(tiny_clip_checkpoint):
    vision = load_encoder(str(tiny_clip_checkpoint[0]), "vision")
    pixels = probe_inputs(vision, batch=2)[0]
    ref = vision.encode(pixels)
    vision.image_size = 7  # the probe's pixels no longer fit the position embeddings
    choice = accelerate(vision, "auto", repeats=1)
    assert choice.backend == "fp32" and "error" in choice.report["fp32"]
    torch.testing.assert_close(vision.encode(pixels), ref)
