"""The sharded feature job behind `mumur features` (`mumur.data.feature_job`): disjoint, complete
shards that merge, the CLI end to end, and the trainer reading what the job wrote."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch


@pytest.fixture
def tiny_corpus(tmp_path):
    """A synthetic-format corpus: 4 tiny mp4s and 1 jpg, all in the test split."""
    from conftest import write_index_video
    from PIL import Image

    root = tmp_path / "corpus"
    root.mkdir()
    items = []
    for k in range(4):
        write_index_video(root / f"v{k}.mp4", n_frames=8 + 4 * k, fps=4, size=(32, 32))
        items.append({"id": f"v{k}", "path": f"v{k}.mp4", "type": "video"})
    Image.new("RGB", (32, 32), (250, 20, 20)).save(root / "i0.jpg")
    items.append({"id": "i0", "path": "i0.jpg", "type": "image"})
    for n, item in enumerate(items):
        item.update(split="test", captions={"en": [f"item {n}"]}, description="",
                    scene={"place": "snow", "objects": []})
    (root / "manifest.json").write_text(json.dumps({"items": items}))
    return root


def _mean_colour_encoder():
    from mumur.data.feature_job import FrameEncoder

    def encode(pixels: torch.Tensor) -> torch.Tensor:
        return pixels.mean(dim=(2, 3))  # (n, 3): mean normalised colour per frame

    return FrameEncoder(encode, "test:mean-colour", 32)


def test_feature_shards_are_disjoint_complete_and_merge(tiny_corpus, tmp_path):
    from mumur.data import load_benchmark
    from mumur.data.feature_store import FeatureStore
    from mumur.data.feature_job import (
        dataset_media_items,
        feature_cache_folder,
        merge_feature_caches,
        run_feature_job,
        verify_feature_cache,
    )

    torch.set_num_threads(1)
    data = load_benchmark("synthetic", tiny_corpus.resolve(), split="test")
    enc = _mean_colour_encoder()
    ids = [mid for mid, _ in dataset_media_items(data)]
    assert len(ids) == 5

    # Two "machines", each with its own cache root.
    per_shard = []
    for k in range(2):
        root = tmp_path / f"machine{k}"
        report = run_feature_job(data, enc, root, 4, shard=(k, 2), num_workers=0,
                                 progress=False)
        assert report.errors == [] and report.computed == report.shard_items
        cache = FeatureStore.for_frames(feature_cache_folder(root, enc.identity, 4),
                                        enc.identity, 4, create=False)
        per_shard.append(set(cache.ids()))
        check = verify_feature_cache(data, enc.identity, root, 4)
        assert not check.complete and check.cached == len(per_shard[-1])
    assert per_shard[0].isdisjoint(per_shard[1])
    assert per_shard[0] | per_shard[1] == set(ids)

    merged = tmp_path / "merged"
    assert merge_feature_caches([tmp_path / "machine0", tmp_path / "machine1"], merged,
                                enc.identity, 4) >= 2
    check = verify_feature_cache(data, enc.identity, merged, 4)
    assert check.complete and check.cached == 5 and check.dim == 3

    # Same features as one unsharded run; three processes sharing one folder also complete it.
    single = tmp_path / "single"
    run_feature_job(data, enc, single, 4, num_workers=0, progress=False)
    shared = tmp_path / "shared"
    for k in range(3):
        run_feature_job(data, enc, shared, 4, shard=(k, 3), num_workers=0, progress=False)
    assert verify_feature_cache(data, enc.identity, shared, 4).complete
    open_ = (lambda r: FeatureStore.for_frames(feature_cache_folder(r, enc.identity, 4),
                                               enc.identity, 4, create=False))
    single_rows, merged_rows = open_(single).get(ids), open_(merged).get(ids)
    f_single, m_single = single_rows["features"], single_rows["mask"]
    f_merged, m_merged = merged_rows["features"], merged_rows["mask"]
    np.testing.assert_array_equal(m_single, m_merged)
    np.testing.assert_allclose(f_single, f_merged)
    assert m_single[-1].tolist() == [True, False, False, False]  # the image: one frame
    # A rerun computes nothing.
    again = run_feature_job(data, enc, single, 4, num_workers=0, progress=False)
    assert (again.computed, again.skipped, again.cached) == (0, 5, 5)


def test_features_cli_end_to_end(tiny_corpus, tmp_path):
    from typer.testing import CliRunner

    from mumur.cli import app
    from mumur.encoders.vision import build_vit_small_scratch

    torch.set_num_threads(1)
    vit = build_vit_small_scratch(image_size=32, patch_size=16, hidden_size=16, num_layers=1,
                                  num_heads=2, seed=0)
    vit.save(tmp_path / "vit")
    base = ["features", "--dataset", "synthetic", "--root", str(tiny_corpus), "--split", "test",
            "--model", str(tmp_path / "vit"), "--num-frames", "3", "--workers", "0", "--quiet"]
    runner = CliRunner()
    first = runner.invoke(app, base + ["--out", str(tmp_path / "a"), "--shard", "0/2"])
    assert first.exit_code == 0, first.output
    assert "3/5 items cached (2 missing)" in first.output
    incomplete = runner.invoke(app, base + ["--out", str(tmp_path / "a"), "--verify"])
    assert incomplete.exit_code == 1
    runner.invoke(app, base + ["--out", str(tmp_path / "b"), "--shard", "1/2"])
    merged = runner.invoke(app, base + ["--out", str(tmp_path / "c"), "--merge",
                                        str(tmp_path / "a"), "--merge", str(tmp_path / "b"),
                                        "--verify", "--json"])
    assert merged.exit_code == 0, merged.output
    report = json.loads(merged.stdout)
    assert report["verify"]["complete"] and report["verify"]["cached"] == 5
    assert report["verify"]["dim"] == 16


def test_trainer_reuses_the_job_cache(tiny_corpus, tmp_path):
    from mumur.data import load_benchmark
    from mumur.data.feature_job import dataset_media_items, run_feature_job
    from mumur.data.features import cached_frame_features

    data = load_benchmark("synthetic", tiny_corpus.resolve(), split="test")
    enc = _mean_colour_encoder()
    run_feature_job(data, enc, tmp_path / "cache", 4, num_workers=0, progress=False)

    def must_not_run(pixels):
        raise AssertionError("the trainer encoded frames again instead of reading the cache")

    # What mumur.train.experiment does with train.cache_dir = tmp_path / "cache".
    paths = [p for _, p in dataset_media_items(data)]
    features, mask = cached_frame_features(paths, must_not_run, enc.identity,
                                           tmp_path / "cache" / "frame_features", 4, 32,
                                           num_workers=0, progress=False)
    assert features.shape == (5, 4, 3) and mask.sum() == 4 * 4 + 1


def test_cache_folder_names_are_stable():
    # Caches written before the job moved out of `protocols/` keep their folder names.
    from pathlib import Path

    from mumur.data.feature_job import feature_cache_folder

    assert feature_cache_folder("/c", "openai/clip-vit-base-patch32", 16) == Path(
        "/c/frame_features/a4e23800d3cc256a")
