"""The Ray engine of the feature job on a local Ray cluster (2 CPUs): the same features as the
local engine, WebDataset tar shards as input, resume after a partial run. Needs `ray[data]` (the
`scale` extra, installed by `make test`)."""

from __future__ import annotations

import functools
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import write_palette_image, write_palette_video
from typer.testing import CliRunner

from mumur.data.feature_job import (
    frame_encode_fn,
    resolve_frame_encoder,
    run_feature_job,
    tar_media_items,
)
from mumur.data.feature_store import FeatureStore
from mumur.data.webdataset import list_tar_media, member_file

ray = pytest.importorskip("ray", reason="the scale extra (ray[data]) is not installed")

ENCODER = {"image_size": 32, "hidden_size": 32, "num_layers": 1, "num_heads": 2, "seed": 0}
T = 4


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Images, a video and a broken file; a tar shard (img2dataset layout) with two of them."""
    root = tmp_path_factory.mktemp("ray") / "corpus"
    root.mkdir()
    for i, colour in enumerate(["red", "green", "blue"]):
        write_palette_image(root / f"{colour}_{i}.png", colour, seed=i)
    write_palette_video(root / "blue_green.mp4", ["blue"] * 4 + ["green"] * 4)
    (root / "broken.mp4").write_bytes(b"not a video")
    tar = root.parent / "shard-00000.tar"
    with tarfile.open(tar, "w") as archive:
        for key, name in (("000000", "red_0.png"), ("000001", "blue_green.mp4")):
            archive.add(root / name, arcname=f"{key}{(root / name).suffix}")
            caption = root.parent / f"{key}.txt"
            caption.write_text(f"caption of {name}")
            archive.add(caption, arcname=f"{key}.txt")
    files = sorted(str(p) for p in root.iterdir())
    return [(p, p) for p in files], tar


@pytest.fixture(scope="module")
def ray_cluster():
    # Ray's default worker niceness (15) starves the workers on a busy machine.
    os.environ.setdefault("RAY_worker_niceness", "0")  # an increment (Ray: 15)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _features(report, identity):
    store = FeatureStore.for_frames(report.folder, identity, T, create=False)
    ids = sorted(store.ids())
    return ids, store.get(ids)


def test_tar_listing_and_member_bytes(corpus):
    items, tar = corpus
    members = list_tar_media([tar])
    assert [m.name for m in members] == ["000000.png", "000001.mp4"]  # .txt members left out
    with member_file(members[1]) as path:
        assert path.suffix == ".mp4"
        on_disk = next(p for p, _ in items if p.endswith("blue_green.mp4"))
        assert path.read_bytes() == Path(on_disk).read_bytes()
    assert tar_media_items([tar])[0][0] == f"{tar}#000000.png"


def test_ray_feature_job_equals_the_local_engine(corpus, ray_cluster, tmp_path):
    from mumur.data.ray_engine import RayFrameExtractor

    items, tar = corpus
    items = items + tar_media_items([tar])
    encoder = resolve_frame_encoder("vit-small-scratch", "cpu", **ENCODER)
    local = run_feature_job(items, encoder, tmp_path / "local", T, num_workers=0,
                            progress=False)
    extract = RayFrameExtractor(functools.partial(frame_encode_fn, "vit-small-scratch",
                                                  **ENCODER), actors=1)
    # Resume: a first run holds two items already (as if a job had been stopped)
    run_feature_job(items[:2], encoder, tmp_path / "ray", T, num_workers=0, progress=False)
    got = run_feature_job(items, encoder, tmp_path / "ray", T, batch_size=2, extract=extract,
                          progress=False)
    assert (got.skipped, got.computed) == (2, local.computed - 2)
    assert [e[1] for e in got.errors] == [e[1] for e in local.errors]
    assert len(got.errors) == 1 and got.errors[0][1].endswith("broken.mp4")
    ids, want = _features(local, encoder.identity)
    ids_ray, have = _features(got, encoder.identity)
    assert ids == ids_ray and len(ids) == len(items) - 1  # the tar samples are in
    np.testing.assert_allclose(have["features"], want["features"], rtol=1e-5, atol=1e-6)
    assert np.array_equal(have["mask"], want["mask"])
    assert np.array_equal(have["timestamps"], want["timestamps"])
    # the tar's members give the features of the same files on disk
    store = FeatureStore.for_frames(got.folder, encoder.identity, T, create=False)
    on_disk = next(p for p, _ in items if str(p).endswith("blue_green.mp4"))
    pair = store.get([on_disk, f"{tar}#000001.mp4"])["features"]
    np.testing.assert_allclose(pair[0], pair[1], rtol=1e-6)
    again = run_feature_job(items, encoder, tmp_path / "ray", T, extract=extract, progress=False)
    assert again.computed == 0 and again.skipped == len(items) - 1


def test_cli_index_with_the_ray_engine_equals_the_local_index(tiny_mumur_model, palette_corpus,
                                                              ray_cluster, tmp_path):
    from mumur.cli import app
    from mumur.index import Index

    runner = CliRunner()
    for engine in ("local", "ray"):
        out = runner.invoke(app, ["index", str(palette_corpus), "--index", str(tmp_path / engine),
                                  "--model", str(tiny_mumur_model), "--quiet", "--workers", "0",
                                  "--json", "--engine", engine, "--batch-size", "4"])
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout)["indexed"] == 10
    local, remote = Index(tmp_path / "local"), Index(tmp_path / "ray")
    for query in ("a red circle", "ein blauer Stern"):
        want = local.search(query, k=10, exact=True).results
        got = remote.search(query, k=10, exact=True).results
        assert [r.path for r in got] == [r.path for r in want]
        np.testing.assert_allclose([r.score for r in got], [r.score for r in want], atol=1e-5)
    # a restarted run finds everything committed
    again = runner.invoke(app, ["index", str(palette_corpus), "--index", str(tmp_path / "ray"),
                                "--quiet", "--json", "--engine", "ray"])
    assert again.exit_code == 0 and json.loads(again.stdout)["unchanged"] == 10, again.output
