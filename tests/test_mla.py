"""MLA (survey §3.2.2, eq. 6-8): the language acquisition encoder's shapes, routing, frozen
English path, per-language gradients, save/load; the two losses; one language per batch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mumur.encoders import load_encoder
from mumur.encoders.text.mla import MlaTextEncoder
from mumur.train.mla import (
    ExposureBatches,
    LanguageExposureLoss,
    MlaStageModule,
    NltBatches,
    exposure_pairs,
    init_multilingual_embedding,
    language_of_step,
    load_mla_recipe,
    mla_parameter_counts,
)

GERMAN = ["ein roter Kreis bewegt sich nach links am Strand", "ein kleiner blauer Stern im Schnee"]
ENGLISH = ["a red circle moves left on the beach", "a small blue star in the snow"]


@pytest.fixture(scope="module")
def ml_tokenizer():
    from mumur.train.distill.students import train_tokenizer

    text = GERMAN + ENGLISH + ["un cercle rouge se déplace vers la gauche", "赤い円が左に動く"]
    return train_tokenizer(text * 20, 120, 32)


@pytest.fixture()
def mla(tiny_clip_checkpoint, ml_tokenizer):
    clip = load_encoder(str(tiny_clip_checkpoint[0]), modality="text")
    torch.manual_seed(0)
    return MlaTextEncoder(clip, ml_tokenizer, ["de", "fr", "ja"], bottleneck=8, fallback="de")


def test_english_path_is_the_frozen_clip_tower(mla):
    with mla.language("en"):
        out = mla(ENGLISH)
    assert out.shape == (2, mla.dim)
    assert torch.allclose(out, mla.clip(ENGLISH))
    assert not any(p.requires_grad for p in mla.clip.parameters())


def test_acquirer_path_matches_clip_when_given_clip_embeddings_and_identity_acquirers(mla):
    # acquirers start at zero (Psi' = Psi): with CLIP's own token table the path is CLIP's
    enc = mla.clip.tokenize(ENGLISH)
    mla.embedding = mla.clip.model.text_model.embeddings.token_embedding
    with torch.no_grad():
        out = mla.forward_tokens(enc["input_ids"], enc["attention_mask"], "de")
    assert torch.allclose(out, mla.clip(ENGLISH), atol=1e-5)


def test_acquirers_change_the_output_of_their_language_only(mla):
    with torch.no_grad():
        before = {lang: mla.forward_language(GERMAN, lang) for lang in ("de", "fr")}
        for p in mla.acquirers["de"].up.parameters():
            p.normal_()  # (a constant shift would vanish in the layer norms)
        after = {lang: mla.forward_language(GERMAN, lang) for lang in ("de", "fr")}
    assert not torch.allclose(before["de"], after["de"])
    assert torch.allclose(before["fr"], after["fr"])


def test_routing_given_language_identified_language_and_fallback(mla):
    with mla.language("fr"):
        assert mla.route(GERMAN) == ["fr", "fr"]
    with mla.language("pt"):  # no acquirers for pt: the fallback's
        assert mla.route(GERMAN) == ["de", "de"]
    mla.fallback = None
    with mla.language("pt"):  # else the closest acquirer language's
        assert mla.route(["un cercle rouge se déplace vers la gauche"]) == ["fr"]
    assert mla.route([GERMAN[0], ENGLISH[0]]) == ["de", "en"]  # language identification
    out = mla([GERMAN[0], ENGLISH[0]])
    assert torch.allclose(out[1], mla.clip([ENGLISH[0]])[0])
    with torch.no_grad():
        assert torch.allclose(out[0], mla.forward_language([GERMAN[0]], "de")[0], atol=1e-5)


def test_one_language_batch_trains_only_its_acquirers_and_the_shared_table(mla):
    module = MlaStageModule(mla, "nlt")
    batch = {"language": "fr", "target": GERMAN, "teacher": torch.randn(2, mla.dim)}
    module.compute_loss(batch).loss.backward()
    assert mla.embedding.weight.grad is not None
    assert all(p.grad is not None for p in mla.acquirers["fr"].parameters())
    assert all(p.grad is None for lang in ("de", "ja") for p in mla.acquirers[lang].parameters())
    assert all(p.grad is None for p in mla.clip.parameters())


def test_save_load_round_trip_and_parameter_counts(mla, tmp_path):
    with torch.no_grad():
        for p in mla.acquirers["ja"].parameters():
            p.normal_()
    mla.save(tmp_path / "mla")
    loaded = load_encoder(str(tmp_path / "mla"), modality="text")
    assert isinstance(loaded, MlaTextEncoder) and loaded.languages == ["en", "de", "fr", "ja"]
    with mla.language("ja"), loaded.language("ja"):
        assert torch.allclose(mla.eval()(GERMAN), loaded(GERMAN), atol=1e-6)
    counts = mla_parameter_counts(mla)
    one = sum(p.numel() for p in mla.acquirers["de"].parameters())
    assert counts["one_language"] == one == 2 * (2 * 32 * 8 + 8 + 32)  # 2 layers, H 32, r 8
    assert counts["trainable"] == counts["embedding"] + 3 * one < counts["full_finetune"]
    added = mla.add_language("pt")
    assert sum(p.numel() for p in added.parameters()) == one
    with pytest.raises(ValueError):
        mla.add_language("en")


def test_embedding_init_copies_clip_rows_for_specials(mla):
    copied = init_multilingual_embedding(mla, seed=0)
    tok, clip_tok = mla.tokenizer, mla.clip.tokenizer
    table = mla.clip.model.text_model.embeddings.token_embedding.weight
    assert copied > 3
    assert torch.equal(mla.embedding.weight[tok.eos_token_id], table[clip_tok.eos_token_id])


def test_language_exposure_loss_is_eq7_8():
    torch.manual_seed(0)
    media, text = torch.randn(4, 8), torch.randn(4, 8)
    loss = LanguageExposureLoss(temperature=0.5)(media, text)
    sim = torch.nn.functional.normalize(media, dim=-1) @ torch.nn.functional.normalize(
        text, dim=-1).T / 0.5
    nce = lambda s: -torch.log_softmax(s, dim=1).diagonal().mean()  # noqa: E731 - eq. (8)
    assert torch.allclose(loss, (nce(sim) + nce(sim.T)) / 2)
    aligned = LanguageExposureLoss(0.01)(torch.eye(4), torch.eye(4))
    assert aligned < 1e-6 < LanguageExposureLoss(0.01)(torch.eye(4), torch.eye(4).flip(0))


def test_nlt_loss_is_mean_squared_error(mla):
    module = MlaStageModule(mla, "nlt")
    with torch.no_grad():
        pred = mla.forward_language(GERMAN, "de")
    target = pred + 2.0
    out = module.compute_loss({"language": "de", "target": GERMAN, "teacher": target})
    assert out.loss.item() == pytest.approx(4.0, rel=1e-5)
    assert set(out.terms) == {"nlt_de"}
    with pytest.raises(ValueError):
        MlaStageModule(mla, "other")


def test_batches_hold_one_language_and_cycle_through_all():
    langs = ["ar", "de", "fr", "ja"]
    seen = [language_of_step(langs, 0, 0, i) for i in range(8)]
    assert sorted(seen[:4]) == langs and sorted(seen[4:]) == langs
    from mumur.data.synthetic.parallel import ParallelPair
    from mumur.train.data import TextFeatureTable

    pairs = [ParallelPair(lang, f"src {k}", f"{lang} {k}") for lang in ("en", "de", "fr")
             for k in range(5)]
    table = TextFeatureTable([f"src {k}" for k in range(5)], torch.arange(5.0)[:, None])
    batches = NltBatches(pairs, table, batch_size=6, steps_per_epoch=4, seed=1)
    assert batches.languages == ["de", "fr"]  # English keeps CLIP's path
    for i in range(4):
        b = batches.batch(0, i)
        assert all(t.startswith(b["language"]) for t in b["target"])
        assert [f"src {int(v)}" for v in b["teacher"][:, 0]] == [
            "src " + t.split()[1] for t in b["target"]]
    manifest = {"items": [{"captions": {"en": ["x"], "de": [f"d{i}a", f"d{i}b"]}}
                          for i in range(5)]}
    exposure = ExposureBatches(exposure_pairs(manifest, ["en", "de"]), np.eye(5), 8, 2)
    b = exposure.batch(0, 0)
    assert exposure.batch_size == 5 and b["language"] == "de"
    items = [int(t[1]) for t in b["target"]]
    assert len(set(items)) == 5 and torch.equal(b["media"], torch.eye(5)[items])


def test_packaged_recipe_and_exclusion():
    recipe = load_mla_recipe("world-mla")
    assert "en" not in recipe.target_languages and len(recipe.target_languages) == 14
    held = load_mla_recipe("world-mla", exclude_languages=("pt",))
    assert "pt" not in held.target_languages and held.with_seed(3).le.seed == 3
    from mumur.errors import ConfigError

    with pytest.raises(ConfigError):
        load_mla_recipe("world-mla", exclude_languages=("xx",))


@pytest.mark.slow
def test_train_mla_and_add_language_end_to_end(tmp_path):
    import dataclasses

    from mumur.train.mla import add_language, train_mla

    recipe_file = tmp_path / "r.json"
    recipe_file.write_text(json.dumps({
        "name": "tiny", "clip": "world-clip",
        "world": {"seed": 1001, "videos": 20, "images": 5},
        "exposure_world": {"seed": 1003, "videos": 6, "images": 4},
        "validation_world": {"seed": 1002, "videos": 8, "test_fraction": 1.0, "split": "test"},
        "languages": ["de", "fr"], "bottleneck": 8, "vocab_size": 300, "frames": 2,
        "nlt": {"max_steps": 6, "batch_size": 8, "warmup_steps": 1, "progress": False},
        "le": {"max_steps": 2, "batch_size": 4, "warmup_steps": 1, "progress": False}}))
    recipe = load_mla_recipe(recipe_file)
    results = train_mla(recipe, tmp_path / "run", progress=False)
    assert results["nlt"]["steps"] == 6 and results["le"]["steps"] == 2
    assert set(results["validation"]) == {"de", "fr"}
    added = add_language(results["model"], "es", dataclasses.replace(recipe, languages=(
        "de", "fr", "es")), tmp_path / "add", cache_dir=tmp_path / "run" / "cache",
        progress=False)
    assert added["parameters_added"] == results["parameters"]["one_language"]
    assert added["trainable_parameters"] == added["parameters_added"]
    assert "es" in load_encoder(added["model"], modality="text").acquirers


def test_mla_is_a_model_text_encoder_with_search_routing(mla, tiny_clip_checkpoint, tmp_path):
    """Saved in a retrieval model, MLA loads back with it and takes the query language the
    search product gives it (`choose_branch` -> ISO code -> `encode_text(language_code=)`)."""
    from mumur.index.language import choose_branch
    from mumur.model import create_model, load_model

    with torch.no_grad():
        for p in mla.acquirers["fr"].parameters():
            p.normal_()
    clip = load_encoder(str(tiny_clip_checkpoint[0]), modality="text")
    model = create_model("meanP", text_en=clip, text_ml=mla, embed_dim=8, frame_dim=16,
                         num_frames=2)
    model.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert isinstance(loaded.text_ml, MlaTextEncoder)
    assert loaded.language_code_family("ml") == "m2m100"
    chosen = choose_branch(GERMAN[0], "fr", ("ml",), {"ml": loaded.language_code_family("ml")})
    assert chosen.branch == "ml" and chosen.code == "fr"
    query = loaded.encode_text([GERMAN[0]], branch="ml", language_code=chosen.code)
    with torch.no_grad():
        direct = loaded.head.text_embed(loaded.text_ml.forward_language([GERMAN[0]], "fr"), "ml")
    assert torch.allclose(query, direct, atol=1e-6)
    detected = loaded.encode_text([GERMAN[0]], branch="ml")  # no code: identified as German
    assert not torch.allclose(query, detected)
