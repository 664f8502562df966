"""Multi-shot videos of the synthetic world: manifest shape, cuts in the rendered media where the
manifest puts them, determinism, caption-to-shot links, uniqueness, adapter."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from mumur.data import load_benchmark
from mumur.data.synthetic import SynthConfig, build_manifest, generate
from mumur.data.synthetic.languages.en import PLACE as EN_PLACE
from mumur.errors import ConfigError

SHOTS = {"videos": 10, "images": 2, "val_fraction": 0.2, "test_fraction": 0.3,
         "multi_shot": 0.6, "languages": ("en", "de", "ja")}


@pytest.fixture(scope="module")
def shot_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("shots")
    generate(out, SynthConfig(seed=3, **SHOTS), workers=1, progress=False)
    return out


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def _multi(manifest):
    return [item for item in manifest["items"] if "shots" in item]


def _frame_diffs(path) -> np.ndarray:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24").astype(np.float32)
                  for f in container.decode(video=0)]
    return np.abs(np.diff(np.stack(frames), axis=0)).mean(axis=(1, 2, 3))  # (F-1,)


def test_manifest_shape(shot_world):
    manifest = _manifest(shot_world)
    render = manifest["render"]
    duration = render["num_frames"] / render["fps"]
    multi = _multi(manifest)
    assert manifest["multi_shot"] == SHOTS["multi_shot"]
    assert 0 < len(multi) < SHOTS["videos"]  # single-shot videos stay
    for item in manifest["items"]:
        if "shots" not in item:
            assert "scene" in item and "caption_shots" not in item
            continue
        assert "scene" not in item and item["type"] == "video"
        shots = item["shots"]
        assert 2 <= len(shots) <= 3
        assert shots[0]["start"] == 0.0 and shots[-1]["end"] == duration
        for a, b in zip(shots, shots[1:]):
            assert a["end"] == b["start"]
        for shot in shots:  # cut mid-video: every shot at least a quarter of the clip
            assert shot["end"] - shot["start"] >= duration / 4 - 1e-9
            assert set(shot["scene"]) == {"place", "objects"}
        assert len({s["scene"]["place"] for s in shots}) == len(shots)


def test_caption_shots_link_each_caption_to_its_shot(shot_world):
    for item in _multi(_manifest(shot_world)):
        assert set(item["caption_shots"]) == set(item["captions"])
        for code, shots in item["caption_shots"].items():
            assert len(shots) == len(item["captions"][code])
            assert all(0 <= k < len(item["shots"]) for k in shots)
        # Caption position j describes the same shot in every language (parallel captions).
        lists = list(item["caption_shots"].values())
        for j in range(min(map(len, lists))):
            assert len({shots[j] for shots in lists}) == 1
        for text, k in zip(item["captions"]["en"], item["caption_shots"]["en"]):
            scene = item["shots"][k]["scene"]
            main = scene["objects"][0]
            assert EN_PLACE[scene["place"]] in text.lower()
            assert f"{main['colour']} {main['shape']}" in text
            other = [item["shots"][m]["scene"]["place"] for m in range(len(item["shots"]))
                     if m != k]
            assert not any(EN_PLACE[p] in text.lower() for p in other)
        if item["split"] == "train":
            assert len(set(item["caption_shots"]["en"])) >= min(2, len(item["captions"]["en"]))


def test_rendered_cuts_are_where_the_manifest_says(shot_world):
    manifest = _manifest(shot_world)
    fps = manifest["render"]["fps"]
    multi = _multi(manifest)
    assert multi
    for item in multi:
        diffs = _frame_diffs(shot_world / item["path"])
        cuts = sorted(round(s["start"] * fps) for s in item["shots"][1:])  # first frame of a shot
        # The frame difference across a cut (frame c-1 -> c) is diffs[c - 1]; the largest
        # differences of the clip are exactly at the cuts.
        top = sorted(int(i) + 1 for i in np.argsort(diffs)[::-1][:len(cuts)])
        assert top == cuts, (item["id"], diffs.round(1).tolist())
        within = np.delete(diffs, [c - 1 for c in cuts])
        assert diffs[[c - 1 for c in cuts]].min() > 2 * within.max()


def test_multi_shot_audio_and_length(shot_world):
    manifest = _manifest(shot_world)
    n = manifest["render"]["num_frames"]
    for item in _multi(manifest):
        with av.open(str(shot_world / item["path"])) as container:
            assert sum(1 for _ in container.decode(video=0)) == n
            assert container.streams.audio


def test_deterministic_and_zero_fraction_is_unchanged(shot_world, tmp_path):
    again = tmp_path / "again"
    generate(again, SynthConfig(seed=3, **SHOTS), workers=2, progress=False)
    assert (again / "manifest.json").read_bytes() == (shot_world / "manifest.json").read_bytes()
    item = _multi(_manifest(shot_world))[0]
    assert (again / item["path"]).read_bytes() == (shot_world / item["path"]).read_bytes()
    # Which videos are cut depends only on (seed, index); uncut train items do not change.
    plain = build_manifest(SynthConfig(seed=3, **{**SHOTS, "multi_shot": 0.0}))
    assert "multi_shot" not in plain and all("scene" in i for i in plain["items"])
    cut = build_manifest(SynthConfig(seed=3, **SHOTS))
    for a, b in zip(plain["items"], cut["items"]):
        if a["split"] == "train" and "shots" not in b:
            assert a == b


def test_test_captions_stay_unique_with_shots():
    manifest = build_manifest(SynthConfig(seed=9, videos=60, images=0, val_fraction=0.0,
                                          test_fraction=0.5, multi_shot=0.5, languages=("en",)))
    test = [i for i in manifest["items"] if i["split"] == "test"]
    assert sum("shots" in i for i in test) > 5

    def described(item):
        if "shots" in item:
            return item["shots"][item["caption_shots"]["en"][0]]["scene"]
        return item["scene"]

    def scenes(item):
        return [s["scene"] for s in item["shots"]] if "shots" in item else [item["scene"]]

    keys = ("shape", "colour", "size", "motion")
    for item in test:
        fact = described(item)
        main = fact["objects"][0]
        for other in test:
            if other is item:
                continue
            for scene in scenes(other):
                if scene["place"] != fact["place"]:
                    continue
                assert not any(all(o[k] == main[k] for k in keys) for o in scene["objects"]), (
                    item["id"], other["id"])


def test_adapter_reads_shots(shot_world):
    ds = load_benchmark("synthetic", shot_world, split="all", languages=["en", "de"])
    manifest = _manifest(shot_world)
    for extra, item in zip(ds.extra, manifest["items"]):
        if "shots" in item:
            assert extra["scene"] is None and extra["shots"] == item["shots"]
            assert set(extra["caption_shots"]) == {"en", "de"}
        else:
            assert extra["scene"] == item["scene"] and "shots" not in extra


def test_multi_shot_needs_enough_frames():
    from mumur.data.synthetic import RenderConfig

    with pytest.raises(ConfigError, match="12 frames"):
        SynthConfig(videos=2, images=0, multi_shot=0.5, render=RenderConfig(num_frames=8))


def test_id_prefix_namespaces_items():
    manifest = build_manifest(SynthConfig(seed=4, videos=3, images=1, id_prefix="s4-",
                                          languages=("en",)))
    assert manifest["id_prefix"] == "s4-"
    assert all(i["id"].startswith("s4-") and i["id"][3:] in i["path"] for i in manifest["items"])
