"""Crossmodal-3600: the adapter on fixture lines in the distributed `captions.jsonl` format (written
here, with the format's traps), and backbone checkpoints evaluated on it zero-shot through
`mumur eval` (tiny SigLIP and CLIP checkpoints, equal to a brute-force reference computed with
transformers), with the per-caption language code a code-needing text encoder gets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_siglip import _build, _reference_pixels

from mumur.data import load_benchmark
from mumur.errors import ConfigError, DatasetError
from mumur.eval.runner import evaluate_from_config, evaluate_states, media_states

KEYS = ["000411001ff7dd4f", "0091b1fd8bd6b4b4", "00a9cd2bbd3d2a52", "0153c7d5ab0e0e73",
        "01a4d6d2e2b13f1e"]
RECORDS = [  # raw captions differ from the tokenized ones; counts differ by language and image
    {"image/key": KEYS[0], "image/locale": "de",
     "en": {"caption": ["A red car parked on a street.", "Red car by the curb."],
            "caption/tokenized": ["A red car parked on a street .", "Red car by the curb ."],
            "caption/tokenized/lowercase": ["a red car parked on a street .",
                                            "red car by the curb ."]},
     "de": {"caption": ["Ein rotes Auto parkt an der Straße."],
            "caption/tokenized": ["Ein rotes Auto parkt an der Straße ."],
            "caption/tokenized/lowercase": ["ein rotes auto parkt an der straße ."]},
     "quz": {"caption": ["Puka awtu ñanpi."], "caption/tokenized": ["Puka awtu ñanpi ."],
             "caption/tokenized/lowercase": ["puka awtu ñanpi ."]}},
    {"image/key": KEYS[1], "image/locale": "zh",
     "en": {"caption": ["Two dogs in the snow."], "caption/tokenized": ["Two dogs in the snow ."],
            "caption/tokenized/lowercase": ["two dogs in the snow ."]},
     "zh": {"caption": ["雪地里的两只狗。"], "caption/tokenized": ["雪地 里 的 两 只 狗 。"],
            "caption/tokenized/lowercase": ["雪地 里 的 两 只 狗 。"]}},
    {"image/key": KEYS[2], "image/locale": "fil",
     "en": {"caption": ["A boat on a lake at night.", "Night lake with a boat.",
                        "A small boat."],
            "caption/tokenized": ["A boat on a lake at night .", "Night lake with a boat .",
                                  "A small boat ."],
            "caption/tokenized/lowercase": ["a boat on a lake at night .",
                                            "night lake with a boat .", "a small boat ."]},
     "fil": {"caption": ["Isang bangka sa lawa sa gabi."],
             "caption/tokenized": ["Isang bangka sa lawa sa gabi ."],
             "caption/tokenized/lowercase": ["isang bangka sa lawa sa gabi ."]}},
    {"image/key": KEYS[3], "image/locale": "en",  # no German caption: a distractor in de
     "en": {"caption": ["Children playing football."],
            "caption/tokenized": ["Children playing football ."],
            "caption/tokenized/lowercase": ["children playing football ."]}},
    {"image/key": KEYS[4], "image/locale": "de",
     "en": {"caption": ["A cat sleeping on a sofa."],
            "caption/tokenized": ["A cat sleeping on a sofa ."],
            "caption/tokenized/lowercase": ["a cat sleeping on a sofa ."]},
     "de": {"caption": ["Eine Katze schläft auf dem Sofa.", "Katze auf einem Sofa."],
            "caption/tokenized": ["Eine Katze schläft auf dem Sofa .", "Katze auf einem Sofa ."],
            "caption/tokenized/lowercase": ["eine katze schläft auf dem sofa .",
                                            "katze auf einem sofa ."]}},
]


@pytest.fixture
def xm3600(tmp_path):
    """`captions.jsonl` (an empty line inside, no final newline) and `images/<key>.jpg`."""
    root = tmp_path / "xm3600"
    (root / "images").mkdir(parents=True)
    lines = [json.dumps(r, ensure_ascii=False) for r in RECORDS]
    lines.insert(2, "")
    (root / "captions.jsonl").write_text("\n".join(lines), encoding="utf-8")
    rng = np.random.default_rng(0)
    for key in KEYS:
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            root / "images" / f"{key}.jpg", quality=95)
    return root


def test_the_adapter_reads_every_caption_of_every_language(xm3600):
    ds = load_benchmark("xm3600", xm3600, check_media=True)
    assert ds.items == KEYS and ds.media_type(0) == "image"
    assert ds.media_path(2) == xm3600 / "images" / f"{KEYS[2]}.jpg"
    assert [e["locale"] for e in ds.extra] == ["de", "zh", "fil", "en", "de"]
    texts, items = ds.captions_for("en")
    assert len(texts) == 8 and list(items) == [0, 0, 1, 2, 2, 2, 3, 4]
    assert texts[0] == "A red car parked on a street."  # raw, not tokenized
    texts, items = ds.captions_for("de")
    assert list(items) == [0, 4, 4] and texts[1] == "Eine Katze schläft auf dem Sofa."
    assert ds.captions_for("zh")[0] == ["雪地里的两只狗。"]
    assert set(ds.languages) == {"en", "de", "zh", "fil", "quz"}
    assert "ar" in ds.info["languages_without_captions"]

    tokenized = load_benchmark("xm3600", xm3600, field="caption/tokenized", languages="zh,de")
    assert tokenized.captions_for("zh")[0] == ["雪地 里 的 两 只 狗 。"]
    assert set(tokenized.languages) == {"zh", "de"}
    with pytest.raises(ConfigError, match="unknown or empty languages"):
        load_benchmark("xm3600", xm3600, languages="xx")
    with pytest.raises(ConfigError, match="field must be one of"):
        load_benchmark("xm3600", xm3600, field="raw")
    with pytest.raises(Exception, match="split"):
        load_benchmark("xm3600", xm3600, split="train")


def test_a_broken_line_is_named(xm3600):
    path = xm3600 / "captions.jsonl"
    path.write_text(path.read_text(encoding="utf-8") + "\n{not json", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"captions.jsonl:7: invalid JSON"):
        load_benchmark("xm3600", xm3600)


def _brute_force_t2v(text_emb: np.ndarray, image_emb: np.ndarray, caption_item) -> dict:
    sim = text_emb @ image_emb.T  # (N, B)
    own = sim[np.arange(len(sim)), caption_item]
    ranks = (sim >= own[:, None]).sum(1)  # pessimistic on ties (DESIGN)
    return {"R1": 100 * np.mean(ranks <= 1), "R5": 100 * np.mean(ranks <= 5),
            "MnR": float(np.mean(ranks))}


def _normalize(x):
    return torch.nn.functional.normalize(x, dim=-1).numpy()


@pytest.mark.parametrize("kind", ["siglip", "clip"])
def test_a_backbone_checkpoint_evaluates_zero_shot_on_xm3600(xm3600, tmp_path, kind,
                                                             tiny_clip_checkpoint):
    if kind == "siglip":
        folder, model, tokenizer = _build(tmp_path / "siglip", "siglip2-fixed")
    else:
        (folder, model), tokenizer = tiny_clip_checkpoint, None
    config = tmp_path / "eval.json"
    config.write_text(json.dumps({"model": str(folder), "num_frames": 1,
                                  "data": {"benchmark": "xm3600", "root": str(xm3600)},
                                  "languages": ["en", "de"], "num_workers": 0}))
    result = evaluate_from_config(config)
    assert result["dataset"] == {"name": "xm3600", "split": "test", "items": 5}
    assert result["model"]["source"] == str(folder)

    ds = load_benchmark("xm3600", xm3600)
    images = [Image.open(ds.media_path(i)).convert("RGB") for i in range(len(ds))]
    with torch.no_grad():
        if kind == "siglip":
            image_emb = _normalize(model.get_image_features(
                **_reference_pixels("siglip2-fixed", images)).pooler_output)
        else:
            from transformers import CLIPImageProcessor, CLIPTokenizer

            pixels = CLIPImageProcessor.from_pretrained(folder)(images, return_tensors="pt")
            image_emb = _normalize(model.get_image_features(**pixels).pooler_output)
            tokenizer = CLIPTokenizer.from_pretrained(folder)
    for lang in ("en", "de"):
        texts, caption_item = ds.captions_for(lang)
        with torch.no_grad():
            if kind == "siglip":
                batch = tokenizer(texts, padding="max_length", max_length=64, truncation=True,
                                  return_tensors="pt")
                text_emb = _normalize(model.get_text_features(**batch).pooler_output)
            else:
                batch = tokenizer(texts, padding=True, return_tensors="pt")
                text_emb = _normalize(model.get_text_features(**batch).pooler_output)
        expected = _brute_force_t2v(text_emb, image_emb, np.asarray(caption_item))
        got = result["languages"][lang]["t2v"]
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, abs=1e-6), (lang, key)
        assert "code" not in result["languages"][lang]  # these encoders need no language code


def test_a_code_needing_text_encoder_gets_each_caption_languages_code(xm3600,
                                                                      tiny_clip_checkpoint):
    """NLLB-CLIP's tokenizer needs the FLORES-200 code of the captions' language (never an
    interface language); a language the family has no code for is skipped, with the reason."""
    from mumur.index.loading import clip_retrieval_model

    model = clip_retrieval_model(str(tiny_clip_checkpoint[0]), num_frames=1)
    ds = load_benchmark("xm3600", xm3600)
    seen = []
    real_encode = model.encode_text

    def encode_text(texts, branch="en", language_code=None):
        seen.append((tuple(texts), language_code))
        return real_encode(texts, branch=branch)

    model.language_code_family = lambda branch: "nllb"
    model.encode_text = encode_text
    states = media_states(model, torch.randn(len(ds), 1, model.vision.dim),
                          torch.ones(len(ds), 1, dtype=torch.bool))
    result = evaluate_states(model, ds, states, languages=["de", "zh", "fil", "quz"])
    codes = {lang: m["code"] for lang, m in result["languages"].items()}
    assert codes == {"de": "deu_Latn", "zh": "zho_Hans", "fil": "tgl_Latn"}
    assert dict(seen)[tuple(ds.captions_for("de")[0])] == "deu_Latn"
    assert list(result["skipped_languages"]) == ["quz"]
    assert "not supported by the nllb" in result["skipped_languages"]["quz"]
