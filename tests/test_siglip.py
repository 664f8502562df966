"""SigLIP, multilingual SigLIP and SigLIP 2 through `load_encoder`: tiny random checkpoints of the
real layout (with real tokenizer classes) built here, embeddings equal to transformers' forward."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

import mumur
from mumur.encoders import SiglipTextEncoder, SiglipVisionEncoder, load_encoder
from mumur.errors import EncoderLoadError

torch.set_num_threads(1)

SENTENCES = [
    "two dogs play in the snow",
    "une voiture rouge la nuit",
    "ein Kind läuft am Strand",
    "un gato duerme en el sofá",
    " ".join(["word"] * 90),  # longer than 64 tokens: truncated
]
TOWER = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
         "num_attention_heads": 4}
LOGIT_SCALE, LOGIT_BIAS = math.log(10.0), -4.0


def _images(n: int, square: bool = False, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(31, 31), (40, 40)] if square else [(40, 34), (30, 52), (31, 31), (64, 48)]
    return [Image.fromarray(rng.integers(0, 256, (sizes[i % len(sizes)][1],
                                                  sizes[i % len(sizes)][0], 3), dtype=np.uint8))
            for i in range(n)]


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1)


def _spm_tokenizer(folder):
    """A SigLIP SentencePiece tokenizer (`SiglipTokenizer`) trained offline on a few sentences."""
    import sentencepiece as spm
    from transformers import SiglipTokenizer

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES * 3 + ["eine Katze schläft", "il gatto dorme"]),
        model_writer=model, vocab_size=60, hard_vocab_limit=False, pad_id=0, eos_id=1,
        unk_id=2, bos_id=-1, character_coverage=1.0, minloglevel=2)
    (folder / "spiece.model").write_bytes(model.getvalue())
    tokenizer = SiglipTokenizer(str(folder / "spiece.model"), model_max_length=64)
    tokenizer.save_pretrained(folder)
    return tokenizer


def _gemma_tokenizer(folder):
    """A SigLIP 2 (Gemma-layout BPE with byte fallback, lower-casing) `Siglip2Tokenizer`."""
    from transformers import Siglip2Tokenizer

    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"])}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for ch in "▁abcdefghijklmnopqrstuvwxyzäöüéè":
        vocab.setdefault(ch, len(vocab))
    tokenizer = Siglip2Tokenizer(vocab=vocab, merges=[], model_max_length=64)
    tokenizer.save_pretrained(folder)
    return tokenizer


def _build(folder, kind: str):
    from transformers import Siglip2Config, Siglip2Model, SiglipConfig, SiglipModel

    tokenizer = _gemma_tokenizer(folder) if kind != "siglip" else _spm_tokenizer(folder)
    text = {**TOWER, "vocab_size": len(tokenizer), "max_position_embeddings": 64}
    if kind == "siglip2-naflex":
        config = Siglip2Config(text_config=text,
                               vision_config={**TOWER, "num_patches": 16, "patch_size": 4})
        model_class = Siglip2Model
    else:  # SigLIP / mSigLIP, and fixed-resolution SigLIP 2 (SigLIP layout + Gemma tokenizer)
        config = SiglipConfig(text_config=text,
                              vision_config={**TOWER, "image_size": 32, "patch_size": 4})
        model_class = SiglipModel
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = model_class(config).eval()
        for p in model.parameters():  # post_init zeros biases and the scalars: make all count
            p.data.add_(0.02 * torch.randn_like(p))
    model.logit_scale.data.fill_(LOGIT_SCALE)
    model.logit_bias.data.fill_(LOGIT_BIAS)
    model.save_pretrained(folder)
    return folder, model, tokenizer


@pytest.fixture(scope="module", params=["siglip", "siglip2-fixed", "siglip2-naflex"])
def tiny_siglip(request, tmp_path_factory):
    """(folder, model, tokenizer, kind) of a tiny random SigLIP-family checkpoint."""
    return (*_build(tmp_path_factory.mktemp(request.param), request.param), request.param)


def _reference_pixels(kind: str, images):
    from transformers import Siglip2ImageProcessorPil, SiglipImageProcessorPil

    if kind == "siglip2-naflex":
        processor = Siglip2ImageProcessorPil(patch_size=4, max_num_patches=16)
        return dict(processor(images=images, return_tensors="pt"))
    processor = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    return {"pixel_values": processor(images=images, return_tensors="pt")["pixel_values"]}


def test_siglip_vision_matches_get_image_features(tiny_siglip):
    folder, model, _, kind = tiny_siglip
    enc = load_encoder(str(folder), modality="vision")
    assert isinstance(enc, SiglipVisionEncoder) and enc.dim == 32
    naflex = kind == "siglip2-naflex"
    # NaFlex keeps the aspect ratio of non-square images (our deviation: squash), so compare on
    # square ones there; SigLIP squashes every image.
    images = _images(4, square=naflex)
    reference = _reference_pixels(kind, images)
    if not naflex:
        torch.testing.assert_close(enc.preprocess(images), reference["pixel_values"],
                                   atol=1e-5, rtol=0)
    with torch.no_grad():
        expected = _normalize(model.get_image_features(**reference).pooler_output)
    got = enc.encode(images)
    assert got.shape == (4, 32) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_siglip_text_matches_get_text_features(tiny_siglip):
    folder, model, tokenizer, _ = tiny_siglip
    enc = load_encoder(str(folder), modality="text")
    assert isinstance(enc, SiglipTextEncoder) and enc.max_length == 64 and enc.dim == 32
    batch = tokenizer(SENTENCES, padding="max_length", max_length=64, truncation=True,
                      return_tensors="pt")
    assert batch["input_ids"].shape == (len(SENTENCES), 64)
    with torch.no_grad():
        expected = _normalize(model.get_text_features(**batch).pooler_output)
    torch.testing.assert_close(enc.encode(SENTENCES), expected, atol=1e-5, rtol=0)


def test_siglip_keeps_logit_scale_and_bias(tiny_siglip, tmp_path):
    folder, model, tokenizer, kind = tiny_siglip
    vision = load_encoder(str(folder), modality="vision")
    text = load_encoder(str(folder), modality="text")
    for tower in (vision, text):
        assert tower.logit_scale == pytest.approx(LOGIT_SCALE)
        assert tower.logit_bias == pytest.approx(LOGIT_BIAS)
    images = _images(2, square=True)
    inputs = {**tokenizer(SENTENCES[:3], padding="max_length", max_length=64,
                          return_tensors="pt"), **_reference_pixels(kind, images)}
    with torch.no_grad():
        expected = torch.sigmoid(model(**inputs).logits_per_text)  # (3, 2)
    cosine = text.encode(SENTENCES[:3]) @ vision.encode(images).T
    torch.testing.assert_close(text.match_probability(cosine), expected, atol=1e-5, rtol=0)
    # the scalars travel with a saved tower
    again = mumur.load_encoder(str(text.save(tmp_path / "text")), modality="text")
    assert again.logit_scale == text.logit_scale and again.logit_bias == text.logit_bias


def test_siglip_towers_save_load_round_trip(tiny_siglip, tmp_path):
    folder, _, _, _ = tiny_siglip
    for modality, batch in (("vision", _images(3)), ("text", SENTENCES)):
        enc = load_encoder(str(folder), modality=modality)
        again = mumur.load_encoder(str(enc.save(tmp_path / modality)), modality=modality)
        assert type(again) is type(enc) and again.identity == enc.identity
        torch.testing.assert_close(again.encode(batch), enc.encode(batch), atol=0, rtol=0)
    with pytest.raises(EncoderLoadError, match="provides text"):
        load_encoder(str(tmp_path / "text"), modality="vision")


def test_siglip_checkpoint_indexes_through_clip_path(tiny_siglip):
    """A SigLIP folder is a `--model` like a CLIP one; decode workers squash, SigLIP-normalised."""
    from mumur.index.loading import load_embedder

    folder, _, _, kind = tiny_siglip
    embedder = load_embedder(str(folder), num_frames=2)
    pre = embedder.pixel_preprocessor
    assert pre.resize == "squash" and tuple(pre.mean) == (0.5, 0.5, 0.5)
    assert pre.resample == ("bilinear" if kind == "siglip2-naflex" else "bicubic")
    queries = embedder.encode_queries(["a red circle"], "en")
    assert queries.shape == (1, 32) and abs(float(np.linalg.norm(queries)) - 1) < 1e-5


def test_search_reports_siglips_own_match_probability(tiny_siglip, tmp_path,
                                                      tiny_clip_checkpoint):
    """Search results carry sigmoid(cos * exp(logit_scale) + logit_bias) with the checkpoint's own
    scalars (equal to transformers' `sigmoid(logits_per_text)` for an image) through the Python
    API, `mumur search --json` and `/api/search`; CLIP-family indexes report none."""
    import json

    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from mumur.cli import app
    from mumur.index import Index, build_index
    from mumur.serve import create_app, load_resources

    folder, model, tokenizer, kind = tiny_siglip
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    for i, image in enumerate(_images(4, square=True, seed=3)):
        image.resize((32, 32)).save(corpus / f"img_{i}.png")
    build_index([corpus], index, model=str(folder), num_workers=0, progress=False)

    query = SENTENCES[1]
    response = Index(index).search(query, k=4, exact=True)
    assert len(response.results) == 4
    text = tokenizer([query], padding="max_length", max_length=64, return_tensors="pt")
    for hit in response.results:
        pixels = _reference_pixels(kind, [Image.open(hit.path).convert("RGB")])
        with torch.no_grad():
            expected = torch.sigmoid(model(**text, **pixels).logits_per_text)[0, 0].item()
        assert hit.probability == pytest.approx(expected, abs=1e-4)
        cosine = math.log(expected / (1 - expected)) - LOGIT_BIAS  # the checkpoint's own scale
        assert hit.score == pytest.approx(cosine / math.exp(LOGIT_SCALE), abs=1e-4)
    assert len({round(h.probability, 4) for h in response.results}) > 1

    out = CliRunner().invoke(app, ["search", query, "--index", str(index), "--json", "--exact",
                                   "--top-k", "4"])
    assert out.exit_code == 0, out.output
    cli = json.loads(out.stdout)
    assert [r["probability"] for r in cli] == [h.probability for h in response.results]
    resources = load_resources(index)
    with TestClient(create_app(resources)) as client:
        hits = client.get("/api/search", params={"q": query, "k": 4, "exact": True}).json()
    resources.index.close()
    assert [h["probability"] for h in hits["results"]] == [h.probability for h in
                                                             response.results]

    clip_index = tmp_path / "clip-index"  # a CLIP checkpoint has no sigmoid bias: no probability
    build_index([corpus], clip_index, model=str(tiny_clip_checkpoint[0]), num_workers=0,
                progress=False)
    assert {h.probability for h in Index(clip_index).search(query, k=4).results} == {None}
