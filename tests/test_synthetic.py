"""The synthetic world: determinism, real media files, caption grammar and uniqueness, adapter."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import av
import numpy as np
import pytest

from mumur.data import load_benchmark
from mumur.data.synthetic import (
    COLOURS,
    LANGUAGES,
    MOTIONS,
    PLACES,
    SHAPES,
    SIZES,
    SOUNDS,
    RenderConfig,
    SceneObject,
    SynthConfig,
    build_manifest,
    generate,
)
from mumur.data.synthetic.languages import get_language
from mumur.data.synthetic.render import object_state
from mumur.data.synthetic.world import item_rng, sample_scene
from mumur.errors import ConfigError, DatasetError

TINY = {"videos": 8, "images": 4, "val_fraction": 0.25, "test_fraction": 0.25}


def _corpus(tmp_path_factory, name: str, seed: int):
    out = tmp_path_factory.mktemp(name)
    generate(out, SynthConfig(seed=seed, **TINY), workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def corpus_a(tmp_path_factory):
    return _corpus(tmp_path_factory, "synth_a", seed=7)


@pytest.fixture(scope="module")
def corpus_b(tmp_path_factory):
    return _corpus(tmp_path_factory, "synth_b", seed=7)


def _first_frame(path) -> np.ndarray:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb24")


def _obj(shape, colour="red", size="large", motion="moves left", sound=None):
    return SceneObject(shape, colour, size, motion, sound, 0.5, 0.5, 0.0)


# ------------------------------------------------------------------ determinism and media


def test_same_seed_gives_identical_manifest_and_media(corpus_a, corpus_b):
    manifest_a = (corpus_a / "manifest.json").read_bytes()
    assert manifest_a == (corpus_b / "manifest.json").read_bytes()
    items = json.loads(manifest_a)["items"]
    for item in items:
        a, b = corpus_a / item["path"], corpus_b / item["path"]
        if item["type"] == "video":
            np.testing.assert_array_equal(_first_frame(a), _first_frame(b))
        assert a.read_bytes() == b.read_bytes(), item["path"]


def test_different_seed_differs(corpus_a, tmp_path):
    manifest = build_manifest(SynthConfig(seed=8, **TINY))
    ours = json.loads((corpus_a / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["items"] != ours["items"]
    assert [i["scene"] for i in manifest["items"]] != [i["scene"] for i in ours["items"]]


def test_parallel_workers_do_not_change_output(corpus_a, tmp_path):
    generate(tmp_path, SynthConfig(seed=7, **TINY), workers=2, progress=False)
    assert (tmp_path / "manifest.json").read_bytes() == (corpus_a / "manifest.json").read_bytes()
    for path in sorted((corpus_a / "videos").iterdir()):
        assert path.read_bytes() == (tmp_path / "videos" / path.name).read_bytes()


def test_videos_decode_with_frames_and_audio(corpus_a):
    cfg = RenderConfig()
    items = json.loads((corpus_a / "manifest.json").read_text(encoding="utf-8"))["items"]
    videos = [i for i in items if i["type"] == "video"]
    assert len(videos) == 8 and all(i["path"].endswith(".mp4") for i in videos)
    for item in videos[:3]:
        with av.open(str(corpus_a / item["path"])) as container:
            assert container.streams.video[0].codec_context.name == "h264"
            assert len(container.streams.audio) == 1
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == cfg.num_frames
        assert frames[0].shape == (cfg.size, cfg.size, 3)
        with av.open(str(corpus_a / item["path"])) as container:
            samples = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
        assert samples.size >= cfg.duration * cfg.sample_rate * 0.95
        sounding = any(o["sound"] for o in item["scene"]["objects"])
        assert (np.abs(samples).max() > 0.05) == sounding, item["scene"]


def test_images_are_jpegs_and_have_no_motion_or_sound(corpus_a):
    from PIL import Image

    items = json.loads((corpus_a / "manifest.json").read_text(encoding="utf-8"))["items"]
    images = [i for i in items if i["type"] == "image"]
    assert len(images) == 4
    for item in images:
        with Image.open(corpus_a / item["path"]) as img:
            assert img.format == "JPEG" and img.size == (128, 128)
        assert all(o["motion"] is None and o["sound"] is None for o in item["scene"]["objects"])


def test_motion_direction_needs_several_frames():
    # Start positions vary, so the first frame does not tell left from right; over the clip
    # the object travels the full distance in its direction.
    starts = {m: [] for m in ("moves left", "moves right")}
    for index in range(200):
        scene = sample_scene(item_rng(0, "video", index), "video")
        for o in scene.objects:
            if o.motion in starts:
                starts[o.motion].append(o.x)
    left, right = np.array(starts["moves left"]), np.array(starts["moves right"])
    assert left.min() < right.max()  # overlapping start ranges
    obj = SceneObject("star", "red", "small", "moves left", None, 0.6, 0.5, 0.0)
    x0, _, _, _ = object_state(obj, 0.0)
    x1, _, _, _ = object_state(obj, 1.0)
    assert x1 < x0 - 0.3 and 0 < x1


# ------------------------------------------------------------------ manifest format


def test_manifest_format(corpus_a):
    manifest = json.loads((corpus_a / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["version"] == 1 and manifest["seed"] == 7
    assert manifest["languages"][0] == "en" and len(manifest["languages"]) >= 12
    for item in manifest["items"]:
        assert set(item) == {"id", "path", "type", "split", "captions", "description", "scene"}
        assert item["split"] in ("train", "val", "test")
        assert set(item["captions"]) == set(manifest["languages"])
        n = Counter(len(v) for v in item["captions"].values())
        assert all(k >= 1 for k in n)
        if item["split"] == "train":
            assert all(2 <= len(v) <= 3 for v in item["captions"].values())
        scene = item["scene"]
        assert scene["place"] in PLACES and 1 <= len(scene["objects"]) <= 3
        for o in scene["objects"]:
            assert set(o) == {"shape", "colour", "size", "motion", "sound"}
            assert o["shape"] in SHAPES and o["colour"] in COLOURS and o["size"] in SIZES
            if item["type"] == "video":
                assert o["motion"] in MOTIONS and o["sound"] in SOUNDS + (None,)
            # The description names every object, its motion and sound, and the place.
            assert f"{o['size']} {o['colour']} {o['shape']}" in item["description"]
            if o["motion"]:
                assert o["motion"] in item["description"]
            if o["sound"]:
                assert f"and {o['sound']}" in item["description"]


# ------------------------------------------------------------------ captions


def test_test_captions_unique_per_language():
    cfg = SynthConfig(videos=400, images=100, seed=3, val_fraction=0.2, test_fraction=0.3)
    items = build_manifest(cfg)["items"]
    for split in ("val", "test"):
        chosen = [i for i in items if i["split"] == split]
        assert len(chosen) > 90
        for code in cfg.languages:
            texts = [t for i in chosen for t in i["captions"][code]]
            assert len(texts) == len(chosen)
            assert len(set(texts)) == len(texts), (split, code)
        # Semantic uniqueness: no other item of the split has an object the caption fits.
        for i in chosen:
            main = i["scene"]["objects"][0]
            for j in chosen:
                if j is i or j["scene"]["place"] != i["scene"]["place"]:
                    continue
                for o in j["scene"]["objects"]:
                    same = all(o[k] == main[k] for k in ("shape", "colour", "size"))
                    fits = main["motion"] is None or o["motion"] is None \
                        or o["motion"] == main["motion"]
                    assert not (same and fits), (i["id"], j["id"])


def test_too_large_unique_split_is_refused():
    with pytest.raises(ConfigError, match="unique"):
        build_manifest(SynthConfig(videos=0, images=2000, test_fraction=0.9, val_fraction=0.0))


@pytest.mark.parametrize("code", LANGUAGES)
def test_every_combination_renders(code):
    grammar = get_language(code)
    for shape, colour, size, place in itertools.product(SHAPES, COLOURS, SIZES, PLACES):
        for with_size in (True, False):
            for motion, sound in itertools.product(MOTIONS, (None,) + SOUNDS):
                texts = grammar.video_captions(_obj(shape, colour, size, motion, sound), place,
                                               with_size)
                assert len(texts) >= 3 + (sound is not None) and len(set(texts)) == len(texts)
                for t in texts:
                    assert t.strip() == t and "  " not in t and "{" not in t and "}" not in t
            texts = grammar.image_captions(_obj(shape, colour, size, None, None), place,
                                           with_size)
            assert len(texts) >= 3 and len(set(texts)) == len(texts)
            assert all(t and "{" not in t and "}" not in t and "  " not in t for t in texts)


@pytest.mark.parametrize("code", LANGUAGES)
def test_each_template_tells_every_scene_apart(code):
    # Different (shape, colour, size, motion, place) never give the same sentence.
    grammar = get_language(code)
    seen: dict[str, tuple] = {}
    for combo in itertools.product(SHAPES, COLOURS, SIZES, MOTIONS, PLACES):
        shape, colour, size, motion, place = combo
        for t in grammar.video_captions(_obj(shape, colour, size, motion), place):
            assert seen.setdefault(t, combo) == combo, (t, combo, seen[t])
    for combo in itertools.product(SHAPES, COLOURS, SIZES, PLACES):
        shape, colour, size, place = combo
        for t in grammar.image_captions(_obj(shape, colour, size, None), place):
            assert seen.setdefault(t, combo) == combo, (t, combo, seen[t])


KNOWN = [
    ("en", _obj("star", "orange", "large", "moves up"), "beach",
     "An orange star moves up on the beach.", False),
    ("de", _obj("circle", "red", "large", "grows"), "beach",
     "Ein großer roter Kreis wird am Strand größer.", True),
    ("de", _obj("heart", "red", "large", "moves left"), "snow",
     "Ein Video von einem großen roten Herzen, das sich im Schnee nach links bewegt.", True),
    ("de", _obj("square", "black", "small", "stays still"), "night",
     "In der Nacht steht ein kleines schwarzes Quadrat still.", True),
    ("fr", _obj("circle", "red", "large", "moves up"), "beach",
     "Un grand cercle rouge monte sur la plage.", True),
    ("fr", _obj("star", "white", "large", "rotates"), "snow",
     "Une vidéo d'une grande étoile blanche qui tourne sur elle-même dans la neige.", True),
    ("es", _obj("star", "red", "large", "stays still"), "night",
     "Una gran estrella roja se queda quieta de noche.", True),
    ("es", _obj("heart", "white", "small", "stays still"), "grass",
     "En la hierba, un pequeño corazón blanco se queda quieto.", True),
    ("it", _obj("star", "black", "small", "stays still"), "beach",
     "Una piccola stella nera resta ferma sulla spiaggia.", True),
    ("it", _obj("circle", "blue", "large", "rotates", "beeps"), "grass",
     "Un grande cerchio blu ruota ed emette dei bip sull'erba.", True),
    ("pt", _obj("star", "yellow", "small", "stays still"), "night",
     "À noite, uma pequena estrela amarela fica parada.", True),
    ("nl", _obj("heart", "red", "large", "rotates"), "beach",
     "Een video van een groot rood hart dat op het strand ronddraait.", True),
    ("nl", _obj("circle", "white", "large", "moves left"), "night",
     "'s Nachts beweegt een grote witte cirkel naar links.", True),
    ("pl", _obj("star", "blue", "large", None), "beach",
     "Na plaży widać dużą niebieską gwiazdę.", True),
    ("pl", _obj("square", "yellow", "small", None), "snow",
     "Zdjęcie małego żółtego kwadratu na śniegu.", True),
    ("ru", _obj("star", "blue", "large", None), "grass",
     "Фотография большой синей звезды на траве.", True),
    ("ru", _obj("heart", "blue", "small", None), "snow",
     "На снегу видно маленькое синее сердце.", True),
    ("ru", _obj("circle", "black", "large", "moves down"), "night",
     "Ночью большой чёрный круг движется вниз.", True),
    ("ar", _obj("circle", "red", "large", "moves left"), "beach",
     "تتحرك دائرة حمراء كبيرة إلى اليسار على الشاطئ.", True),
    ("ar", _obj("square", "red", "large", "rotates"), "beach",
     "مربع أحمر كبير يدور حول نفسه على الشاطئ.", True),
    ("tr", _obj("heart", "red", "large", None), "beach",
     "Büyük kırmızı bir kalbin sahilde çekilmiş fotoğrafı.", True),
    ("tr", _obj("circle", "red", "small", "moves left"), "snow",
     "Karda sola hareket eden küçük kırmızı bir daire görülüyor.", True),
    ("ja", _obj("circle", "red", "large", "moves left"), "beach",
     "浜辺で左に動く大きな赤い円の動画。", True),
    ("ja", _obj("star", "purple", "small", None), "snow",
     "雪の中に小さな紫色の星が一つあります。", True),
    ("ko", _obj("circle", "red", "large", "moves left"), "beach",
     "큰 빨간 원이 해변에서 왼쪽으로 움직입니다.", True),
    ("ko", _obj("heart", "red", "large", None), "grass",
     "큰 빨간 하트는 풀밭에 있습니다.", True),
    ("zh", _obj("star", "yellow", "small", "moves right"), "grass",
     "一颗黄色的小星星在草地上向右移动。", True),
    ("zh", _obj("square", "red", "large", None), "beach",
     "海滩上有一个红色的大正方形。", True),
    ("th", _obj("star", "red", "large", None), "beach",
     "บนชายหาดมีดาวสีแดงขนาดใหญ่หนึ่งดวง", True),
]


@pytest.mark.parametrize("code,obj,place,expected,with_size", KNOWN)
def test_known_grammar(code, obj, place, expected, with_size):
    grammar = get_language(code)
    texts = (grammar.video_captions(obj, place, with_size) if obj.motion
             else grammar.image_captions(obj, place, with_size))
    assert expected in texts, texts


def test_noun_phrase_agreement():
    de, fr = get_language("de"), get_language("fr")
    assert de.noun_phrase(_obj("circle", "red", "large")) == "ein großer roter Kreis"
    assert de.noun_phrase(_obj("star", "red", "large"), "acc") == "einen großen roten Stern"
    assert de.noun_phrase(_obj("heart", "purple", "small")) == "ein kleines violettes Herz"
    assert fr.noun_phrase(_obj("circle", "red", "large")) == "un grand cercle rouge"
    assert fr.noun_phrase(_obj("star", "red", "large")) == "une grande étoile rouge"
    assert fr.noun_phrase(_obj("heart", "white", "small")) == "un petit cœur blanc"
    assert get_language("nl").noun_phrase(_obj("square", "red", "large")) == "een groot rood vierkant"
    assert get_language("it").indefinite_article("stella", "f") == "una "
    assert get_language("it").indefinite_article("altra", "f") == "un'"
    assert get_language("it").indefinite_article("specchio", "m") == "uno "
    tr = get_language("tr")
    assert [tr.genitive(w) for w in ("daire", "yıldız", "üçgen", "kutu")] == [
        "dairenin", "yıldızın", "üçgenin", "kutunun"]
    assert tr.locative("sahil") == "sahilde" and tr.locative("kar") == "karda"
    assert tr.locative("kitap") == "kitapta"
    ko = get_language("ko")
    assert ko.particle("원", "이", "가") == "원이" and ko.particle("하트", "이", "가") == "하트가"
    assert ko.particle("별", "은", "는") == "별은"


def test_train_items_get_paraphrases():
    items = build_manifest(SynthConfig(videos=30, images=10, seed=1))["items"]
    train = [i for i in items if i["split"] == "train"]
    for item in train:
        for texts in item["captions"].values():
            assert 2 <= len(texts) <= 3 and len(set(texts)) == len(texts)


def test_captions_do_not_depend_on_other_languages():
    full = build_manifest(SynthConfig(videos=6, images=3, seed=2))["items"]
    some = build_manifest(SynthConfig(videos=6, images=3, seed=2, languages=("de",)))["items"]
    assert [i["captions"]["de"] for i in full] == [i["captions"]["de"] for i in some]
    assert set(some[0]["captions"]) == {"en", "de"}


# ------------------------------------------------------------------ adapter


def test_adapter_filters_splits_languages_and_types(corpus_a):
    manifest = json.loads((corpus_a / "manifest.json").read_text(encoding="utf-8"))["items"]
    total = 0
    for split in ("train", "val", "test"):
        ds = load_benchmark("synthetic", corpus_a, split=split)
        expected = [i for i in manifest if i["split"] == split]
        assert ds.items == [i["id"] for i in expected]
        assert ds.media_paths == [i["path"] for i in expected]
        assert ds.media_types == [i["type"] for i in expected]
        assert [e["scene"] for e in ds.extra] == [i["scene"] for i in expected]
        n_captions = sum(len(t) for i in expected for t in i["captions"].values())
        assert len(ds.captions) == n_captions
        for k in range(len(ds)):
            assert ds.media_path(k).is_file()
        total += len(ds)
    assert total == len(manifest)
    ds = load_benchmark("synthetic", corpus_a, split="all", languages=["de"],
                        media_types="image")
    assert len(ds) == 4 and set(ds.media_types) == {"image"} and ds.languages == ["de"]
    texts, caption_item = ds.captions_for("de")
    assert len(texts) == len(caption_item) >= 4
    with pytest.raises(DatasetError):
        load_benchmark("synthetic", corpus_a, split="dev")
    with pytest.raises(DatasetError):
        load_benchmark("synthetic", corpus_a, languages=["xx"])


def test_adapter_reports_missing_or_bad_manifest(tmp_path):
    with pytest.raises(DatasetError, match="manifest"):
        load_benchmark("synthetic", tmp_path)
    (tmp_path / "manifest.json").write_text('{"items": [{"id": "x"}]}')
    with pytest.raises(DatasetError, match="lacks"):
        load_benchmark("synthetic", tmp_path)


def test_cli_synth(tmp_path):
    from typer.testing import CliRunner

    from mumur.cli import app

    result = CliRunner().invoke(app, ["synth", "--out", str(tmp_path), "--videos", "2",
                                      "--images", "1", "--languages", "de,ja", "--workers", "1"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["languages"] == ["en", "de", "ja"] and len(manifest["items"]) == 3
