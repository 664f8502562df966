"""NLLB-CLIP and XLM-R CLIP through open_clip, on tiny local checkpoints of their real layout
(open_clip `text_cfg.hf_model_name` towers: an M2M100/NLLB encoder with NLLB's tokenizer, an
XLM-RoBERTa with a Unigram tokenizer), equal to open_clip's own forward.

open_clip's model factory imports torchvision, which does not load beside torch 2.13.0 (the
main install). These tests run in the separate environment `make test-openclip` builds (torch
2.14.1 + torchvision 0.29.1; CI runs it, with MUMUR_REQUIRE_OPENCLIP=1 so that open_clip failing
to import fails instead of skipping) and are skipped, saying so, everywhere else;
tests/test_language_codes.py covers our wrapper without open_clip's factory.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from mumur.encoders import load_encoder

pytestmark = pytest.mark.openclip

try:
    import open_clip
except Exception as exc:  # noqa: BLE001 - ImportError, or torchvision's operator registration
    if os.environ.get("MUMUR_REQUIRE_OPENCLIP"):  # CI's open_clip job: a skip would hide it
        raise
    pytest.skip(f"open_clip does not import here ({type(exc).__name__}: {exc}); run "
                "`make test-openclip` (an environment with a torchvision that matches torch)",
                allow_module_level=True)

torch.set_num_threads(1)

TEXTS = ["a dog on the beach", "ein Hund am Strand", "un chien sur la plage"]


def _backbone(folder, kind: str) -> None:
    """A tiny HF text backbone + its tokenizer in `folder` (what `hf_model_name` points at)."""
    if kind == "nllb":
        from transformers import M2M100Config, M2M100Model, NllbTokenizer

        tokenizer = NllbTokenizer()
        config = M2M100Config(vocab_size=len(tokenizer), d_model=16, encoder_layers=1,
                              decoder_layers=1, encoder_attention_heads=2,
                              decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                              max_position_embeddings=32, pad_token_id=tokenizer.pad_token_id)
        model = M2M100Model(config)
    else:
        from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
        from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.train_from_iterator(TEXTS * 4, trainers.UnigramTrainer(
            vocab_size=60, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>"))
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>",
                                            eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
        config = XLMRobertaConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=32,
                                  max_position_embeddings=34, pad_token_id=1)
        model = XLMRobertaModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _open_clip_folder(tmp_path_factory, kind: str):
    backbone = tmp_path_factory.mktemp(f"{kind}_backbone")
    _backbone(backbone, kind)
    folder = tmp_path_factory.mktemp(f"{kind}_clip")
    pooler = "cls_pooler" if kind == "nllb" else "mean_pooler"  # as nllb-clip-* / xlm-roberta-*
    model_cfg = {"embed_dim": 16,
                 "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16,
                                "patch_size": 8},
                 "text_cfg": {"hf_model_name": str(backbone), "hf_tokenizer_name": str(backbone),
                              "hf_proj_type": "linear", "hf_pooler_type": pooler,
                              "context_length": 16}}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg,
                                                              "preprocess_cfg": {}}))
    # open_clip's local-dir layout: the HF tokenizer's files sit in the folder itself
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(backbone)).save_pretrained(folder)
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{folder}")
    from safetensors.torch import save_model

    save_model(model, str(folder / "open_clip_model.safetensors"))
    model = open_clip.create_model(f"local-dir:{folder}").eval()  # the saved weights
    return folder, model


@pytest.fixture(scope="module", params=["nllb", "xlmr"])
def tiny_open_clip(request, tmp_path_factory):
    return (*_open_clip_folder(tmp_path_factory, request.param), request.param)


def _images(n: int):
    """Sizes whose centre-crop margin is even: torchvision rounds an odd margin's offset up,
    transformers (whose convention `ClipPreprocess` follows) down, a one-pixel shift."""
    rng = np.random.default_rng(0)
    sizes = [(72, 64), (36, 36), (64, 72)]
    return [Image.fromarray(rng.integers(0, 256, (*sizes[i % 3], 3), dtype=np.uint8))
            for i in range(n)]


def test_open_clip_vision_matches_encode_image(tiny_open_clip):
    folder, model, _ = tiny_open_clip
    enc = load_encoder(str(folder), modality="vision")
    _, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    images = _images(3)
    pixels = torch.stack([preprocess(im) for im in images])
    torch.testing.assert_close(enc.preprocess(images), pixels, atol=1e-5, rtol=0)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1)
    torch.testing.assert_close(enc.encode(images), expected, atol=1e-5, rtol=0)


def test_open_clip_text_matches_encode_text_with_the_query_code(tiny_open_clip):
    folder, model, kind = tiny_open_clip
    enc = load_encoder(str(folder), modality="text")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model.encode_text(tokenizer(TEXTS)), dim=-1)
    torch.testing.assert_close(enc.encode(TEXTS), expected, atol=1e-5, rtol=0)
    if kind != "nllb":
        assert enc.code_family is None
        return
    assert enc.code_family == "nllb"
    # The reference: NLLB's tokenizer with src_lang set, padded to open_clip's context length.
    from transformers import AutoTokenizer

    text_cfg = json.loads((folder / "open_clip_config.json").read_text())["model_cfg"]["text_cfg"]
    hf = AutoTokenizer.from_pretrained(text_cfg["hf_tokenizer_name"], src_lang="deu_Latn")
    ids = hf(TEXTS, return_tensors="pt", max_length=16, padding="max_length",
             truncation=True).input_ids
    assert hf.convert_ids_to_tokens(int(ids[0, 0])) == "deu_Latn"
    with torch.no_grad():
        german = torch.nn.functional.normalize(model.encode_text(ids), dim=-1)
    torch.testing.assert_close(enc.encode(TEXTS, language_code="deu_Latn"), german,
                               atol=1e-5, rtol=0)
    assert not torch.allclose(german, expected)


def test_open_clip_save_load_round_trip(tiny_open_clip, tmp_path):
    folder, _, _ = tiny_open_clip
    for modality, batch in (("vision", _images(2)), ("text", TEXTS)):
        enc = load_encoder(str(folder), modality=modality)
        again = load_encoder(str(enc.save(tmp_path / modality)), modality=modality)
        torch.testing.assert_close(again.encode(batch), enc.encode(batch), atol=0, rtol=0)


def test_nllb_clip_evaluates_on_xm3600_with_each_caption_languages_flores_code(
        tmp_path_factory, tmp_path):
    """`mumur eval` of an NLLB-CLIP checkpoint on XM3600-format data: each language's captions
    are tokenized with that language's FLORES-200 code (as open_clip's NLLB tokenizer with
    `src_lang`), equal to a brute-force reference; `quz` (no NLLB code) is skipped, saying why."""
    from test_xm3600 import RECORDS, _brute_force_t2v
    from transformers import AutoTokenizer

    from mumur.data import load_benchmark
    from mumur.eval.runner import evaluate_from_config

    folder, model = _open_clip_folder(tmp_path_factory, "nllb")
    root = tmp_path / "xm3600"
    (root / "images").mkdir(parents=True)
    (root / "captions.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in RECORDS), encoding="utf-8")
    for i, record in enumerate(RECORDS):
        _images(i + 1)[i].save(root / "images" / f"{record['image/key']}.jpg", quality=95)
    config = tmp_path / "eval.json"
    config.write_text(json.dumps({"model": str(folder), "num_frames": 1, "num_workers": 0,
                                  "languages": ["en", "de", "quz"],
                                  "data": {"benchmark": "xm3600", "root": str(root)}}))
    result = evaluate_from_config(config)
    assert {lang: m["code"] for lang, m in result["languages"].items()} == {
        "en": "eng_Latn", "de": "deu_Latn"}
    assert list(result["skipped_languages"]) == ["quz"]

    ds = load_benchmark("xm3600", root)
    _, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    pixels = torch.stack([preprocess(Image.open(ds.media_path(i)).convert("RGB"))
                          for i in range(len(ds))])
    text_cfg = json.loads((folder / "open_clip_config.json").read_text())["model_cfg"]["text_cfg"]
    with torch.no_grad():
        image_emb = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1).numpy()
        for lang, code in (("en", "eng_Latn"), ("de", "deu_Latn")):
            texts, caption_item = ds.captions_for(lang)
            hf = AutoTokenizer.from_pretrained(text_cfg["hf_tokenizer_name"], src_lang=code)
            ids = hf(texts, return_tensors="pt", max_length=16, padding="max_length",
                     truncation=True).input_ids
            text_emb = torch.nn.functional.normalize(model.encode_text(ids), dim=-1).numpy()
            expected = _brute_force_t2v(text_emb, image_emb, np.asarray(caption_item))
            got = result["languages"][lang]["t2v"]
            assert {k: got[k] for k in expected} == pytest.approx(expected, abs=1e-6), lang
