"""mumur.data.features and mumur.data.feature_store: worker-decoded feature extraction, the
safetensors feature store, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mumur.data.feature_store import FeatureStore
from mumur.data.features import cache_features, cache_text_features, extract_frame_features
from mumur.errors import FeatureCacheError, FeatureCacheMismatchError, MediaDecodeError
from mumur.media.decode import read_frames
from mumur.media.transforms import CLIP_MEAN, CLIP_STD

T = 4
GOOD = ["short.mp4", "image.gif", "clip.mkv", "image.jpg", "clip.webm", "audio.mp4", "clip.avi",
        "image.png"]
BAD = ["text.mp4", "empty.mp4"]


class MeanColour:
    """Tiny encoder: each frame's mean RGB (0-255) -> (n, 3); counts the frames it saw."""

    def __init__(self, fail_after_calls: int | None = None):
        self.frames = 0
        self.calls = 0
        self.fail_after_calls = fail_after_calls

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise RuntimeError("simulated crash")
        self.calls += 1
        self.frames += pixels.shape[0]
        mean = torch.tensor(CLIP_MEAN).view(1, 3)
        std = torch.tensor(CLIP_STD).view(1, 3)
        return (pixels.mean(dim=(2, 3)) * std + mean) * 255  # (n, 3)


def _colour_index(rgb) -> int:
    r, g, _ = rgb
    return round((r - 8) / 16) + 16 * round((g - 8) / 16)


def _check_rows(batch, media_files, frame_index):
    for row, path in enumerate(batch.paths):
        feats, mask = batch.features[row], batch.mask[row]
        if path.endswith((".jpg", ".png", ".gif")):
            assert mask.tolist() == [True] + [False] * (T - 1)
            assert np.all(feats[1:] == 0) and batch.timestamps[row, 0] == 0
            continue
        assert mask.all()
        want = [frame_index(im) for im in read_frames(path, T).frames]
        assert [_colour_index(f) for f in feats] == want


def test_extract_maps_features_to_files_and_collects_errors(media_files, frame_index):
    paths = [str(media_files[n]) for n in ["short.mp4", "text.mp4", "image.gif", "clip.mkv",
                                           "empty.mp4", "image.jpg"]]
    enc = MeanColour()
    batches = list(extract_frame_features(paths, enc, T, batch_size=2, num_workers=1))
    assert [p for b in batches for p in b.paths] == [paths[i] for i in (0, 2, 3, 5)]
    assert [i for b in batches for i in b.indices.tolist()] == [0, 2, 3, 5]
    errors = [e for b in batches for e in b.errors]
    assert [e[0] for e in errors] == [paths[1], paths[4]] and all(e[1] for e in errors)
    for b in batches:
        assert b.features.dtype == np.float32 and b.features.shape == (len(b.paths), T, 3)
        assert b.mask.dtype == bool and b.timestamps.dtype == np.float32
        _check_rows(b, media_files, frame_index)
    assert _colour_index(batches[1].features[0, 0]) == 3  # gif: first frame (index 3)
    assert enc.frames == 2 * T + 2  # two videos, two images


def test_in_process_equals_workers_and_random_is_reproducible(media_files):
    paths = [str(media_files[n]) for n in GOOD[:5]]

    def run(workers, strategy, seed=0):
        out = list(extract_frame_features(paths, MeanColour(), T, strategy=strategy,
                                          batch_size=3, num_workers=workers, seed=seed))
        return (np.concatenate([b.features for b in out]),
                np.concatenate([b.timestamps for b in out]))

    f0, t0 = run(0, "uniform")
    f1, t1 = run(1, "uniform")
    assert np.array_equal(f0, f1) and np.array_equal(t0, t1)
    r0, rt0 = run(0, "random", seed=5)
    r2, rt2 = run(2, "random", seed=5)
    assert np.array_equal(r0, r2) and np.array_equal(rt0, rt2)  # keyed by (seed, path)
    _, rt_other = run(0, "random", seed=6)
    assert not np.array_equal(rt0, rt_other)


def test_on_error_raise(media_files):
    with pytest.raises(MediaDecodeError, match="text.mp4"):
        list(extract_frame_features([str(media_files["text.mp4"])], MeanColour(), T,
                                    num_workers=0, on_error="raise"))


def test_feature_cache_roundtrip_and_identity_check(tmp_path):
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((5, T, 8)).astype(np.float32)
    mask = rng.random((5, T)) > 0.3
    ts = rng.random((5, T)).astype(np.float32)
    ids = [f"m{i}" for i in range(5)]
    with FeatureStore.for_frames(tmp_path / "c", "enc-A", T, shard_size=3) as cache:
        cache.put(ids[:2], features=feats[:2], mask=mask[:2], timestamps=ts[:2])
        cache.put(ids[2:], features=feats[2:], mask=mask[2:], timestamps=ts[2:])  # 5 >= 3
        assert cache.has("m4") and len(cache) == 5
    manifest = json.loads((tmp_path / "c" / "cache.json").read_text())
    assert manifest["identity"] == "enc-A" and manifest["items"] == 5 and manifest["dim"] == 8

    cache = FeatureStore.for_frames(tmp_path / "c", "enc-A", T)
    rows = cache.get(["m3", "m0"])
    f, m, t = rows["features"], rows["mask"], rows["timestamps"]
    assert np.array_equal(f, feats[[3, 0]]) and np.array_equal(m, mask[[3, 0]])
    assert np.array_equal(t, ts[[3, 0]])
    with pytest.raises(FeatureCacheError, match="not cached"):
        cache.get(["m0", "zzz"])
    with pytest.raises(FeatureCacheMismatchError, match="enc-B"):
        FeatureStore.for_frames(tmp_path / "c", "enc-B", T)
    with pytest.raises(FeatureCacheMismatchError, match="num_frames"):
        FeatureStore.for_frames(tmp_path / "c", "enc-A", T + 1)
    with pytest.raises(FeatureCacheMismatchError, match="strategy"):
        FeatureStore.for_frames(tmp_path / "c", "enc-A", T, "random")
    with pytest.raises(FeatureCacheError):
        FeatureStore.for_frames(tmp_path / "nothing", "enc-A", T, create=False)


def test_cache_survives_crash_between_writes(tmp_path):
    feats = np.ones((2, T, 3), np.float32)
    mask = np.ones((2, T), bool)
    with FeatureStore.for_frames(tmp_path, "e", T) as cache:
        cache.put(["a", "b"], features=feats, mask=mask, timestamps=np.zeros((2, T), np.float32))
    # A crash mid-shard-write leaves a temporary file; a crash after the shard rename but before
    # the manifest rename leaves an unlisted shard. Neither corrupts the cache.
    (tmp_path / ".tmp-shard-dead.safetensors").write_bytes(b"partial")
    manifest = json.loads((tmp_path / "cache.json").read_text())
    manifest["shards"], manifest["items"] = {}, 0
    (tmp_path / "cache.json").write_text(json.dumps(manifest))
    cache = FeatureStore.for_frames(tmp_path, "e", T)
    assert sorted(cache.ids()) == ["a", "b"]
    assert cache.get(["b"])["features"].shape == (1, T, 3)


def test_cache_features_resumes_after_crash(media_files, tmp_path):
    items = [(f"id{i}", str(media_files[n])) for i, n in enumerate(GOOD + BAD)]
    crashing = MeanColour(fail_after_calls=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        cache_features(items, crashing, tmp_path / "cache", "mean-colour", T, batch_size=2,
                       num_workers=1, flush_every=2, progress=False)
    done = FeatureStore.for_frames(tmp_path / "cache", "mean-colour", T).ids()
    assert len(done) == 4  # two encoder calls x two files, flushed before the crash

    enc = MeanColour()
    report = cache_features(items, enc, tmp_path / "cache", "mean-colour", T, batch_size=2,
                            num_workers=1, flush_every=2, progress=False)
    assert report.skipped == 4 and report.computed == len(GOOD) - 4
    assert sorted(e[0] for e in report.errors) == ["id8", "id9"]
    n_images_left = sum(items[i][1].endswith((".jpg", ".png", ".gif")) for i in range(8)
                        if f"id{i}" not in done)
    assert enc.frames == (len(GOOD) - 4 - n_images_left) * T + n_images_left

    # Same result as a clean run in one go.
    clean = MeanColour()
    cache_features(items, clean, tmp_path / "clean", "mean-colour", T, batch_size=3,
                   num_workers=0, progress=False)
    ids = [f"id{i}" for i in range(len(GOOD))]
    a = FeatureStore.for_frames(tmp_path / "cache", "mean-colour", T).get(ids)
    b = FeatureStore.for_frames(tmp_path / "clean", "mean-colour", T).get(ids)
    for x, y in zip(a.values(), b.values()):
        np.testing.assert_allclose(x, y, atol=1e-4)

    again = MeanColour()
    report = cache_features(items, again, tmp_path / "cache", "mean-colour", T, progress=False,
                            num_workers=0)
    assert report.computed == 0 and again.frames == 0 and report.skipped == len(GOOD) + 2 - 2


def test_cache_features_shards_split_the_work(media_files, tmp_path):
    items = [(f"id{i}", str(media_files[n])) for i, n in enumerate(GOOD)]
    reports = [cache_features(items, MeanColour(), tmp_path, "mc", T, num_workers=0,
                              shard=(k, 3), progress=False) for k in range(3)]
    assert [r.computed for r in reports] == [3, 3, 2]
    cache = FeatureStore.for_frames(tmp_path, "mc", T)
    assert sorted(cache.ids()) == sorted(i for i, _ in items)
    with pytest.raises(ValueError):
        cache_features(items, MeanColour(), tmp_path, "mc", T, shard=(3, 3), progress=False)


def test_encoder_normalisation_and_progress(media_files, frame_index):
    path = str(media_files["short.mp4"])
    (batch,) = extract_frame_features([path], lambda px: px.mean(dim=(2, 3)), 2, num_workers=0,
                                      mean=(0, 0, 0), std=(1, 1, 1), progress=True)
    want = [frame_index(im) for im in read_frames(path, 2).frames]
    assert [_colour_index(f * 255) for f in batch.features[0]] == want


def test_one_store_class_holds_frame_and_text_features(tmp_path):
    from mumur.data.feature_store import frame_tag, store_folder, text_tag

    rng = np.random.default_rng(1)
    feats = rng.standard_normal((2, T, 8)).astype(np.float32)
    frames = FeatureStore.for_frames(tmp_path / "frames", "vis@1", T)
    texts = FeatureStore.for_texts(tmp_path / "texts", "txt@1")
    assert type(frames) is type(texts) is FeatureStore
    frames.put(["v0", "v1"], features=feats, mask=np.ones((2, T), bool),
               timestamps=np.zeros((2, T), np.float32))
    got = cache_text_features(texts, ["a", "bb"], lambda b: np.array([[len(t)] * 5 for t in b]))
    assert got.shape == (2, 5) and got[:, 0].tolist() == [1.0, 2.0]
    texts.close()
    frames.close()

    again = FeatureStore.for_frames(tmp_path / "frames", "vis@1", T, create=False)
    np.testing.assert_array_equal(again.get(["v1"])["features"], feats[1:])
    assert again.dim == 8 and FeatureStore.for_texts(tmp_path / "texts", "txt@1").dim == 5
    # A folder of one kind cannot be opened as the other; each tag has its own folder.
    with pytest.raises(FeatureCacheMismatchError):
        FeatureStore.for_texts(tmp_path / "frames", "vis@1")
    with pytest.raises(FeatureCacheMismatchError):
        FeatureStore.for_frames(tmp_path / "texts", "txt@1", T)
    assert store_folder(tmp_path, frame_tag("e", T)) != store_folder(tmp_path, text_tag("e"))
    # Rows must fit the schema (T frames) and the stored size (D = 8).
    with pytest.raises(ValueError, match="features"):
        again.put(["x"], features=np.zeros((1, T + 1, 8)), mask=np.ones((1, T + 1), bool),
                  timestamps=np.zeros((1, T + 1)))
    with pytest.raises(FeatureCacheMismatchError, match="features"):
        again.put(["x"], features=np.zeros((1, T, 9)), mask=np.ones((1, T), bool),
                  timestamps=np.zeros((1, T)))


def test_failed_shard_write_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    import safetensors.numpy

    store = FeatureStore.for_texts(tmp_path, "enc", shard_size=2)
    store.put(["k0", "k1"], features=np.ones((2, 3)))  # one shard on disk

    def half_write(arrays, path, metadata=None):
        Path(path).write_bytes(b"\x00" * 10)
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", half_write)
    with pytest.raises(OSError, match="disk full"):
        store.put(["k2", "k3"], features=np.zeros((2, 3)))
    monkeypatch.undo()
    reopened = FeatureStore.for_texts(tmp_path, "enc")
    assert sorted(reopened.ids()) == ["k0", "k1"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_text_store_resumes_after_a_killed_writer(tmp_path):
    from mumur.data.feature_store import text_key

    texts = [f"caption {i}" for i in range(7)]
    script = (
        "import os, signal, sys\n"
        "import numpy as np\n"
        "from mumur.data.feature_store import FeatureStore\n"
        "from mumur.data.features import cache_text_features\n"
        "def encode(batch):\n"
        "    if batch == ['caption 6']:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)  # killed while encoding the last batch\n"
        "    return np.array([[float(t.split()[-1])] * 4 for t in batch])\n"
        "store = FeatureStore.for_texts(sys.argv[1], 'enc@1', shard_size=2)\n"
        "cache_text_features(store, [f'caption {i}' for i in range(7)], encode, batch_size=1)\n"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)],
                          env={**os.environ, "PYTHONPATH": src}, timeout=300)
    assert proc.returncode == -9
    store = FeatureStore.for_texts(tmp_path, "enc@1")
    assert sorted(store.ids()) == sorted(text_key(t) for t in texts[:6])  # 3 shards flushed

    seen = []

    def encode(batch):
        seen.extend(batch)
        return np.array([[float(t.split()[-1])] * 4 for t in batch])

    out = cache_text_features(store, texts, encode)
    assert seen == ["caption 6"]  # only what the killed run had not flushed
    assert out[:, 0].tolist() == [float(i) for i in range(7)]
