"""Machine translation (translate-train): codes per family, tiny random checkpoints of MarianMT,
M2M100, NLLB-200 and mBART-50 built offline, batching order, the persistent cache, the JSON file
and the CLI. Outputs of random models are gibberish; the plumbing is what is checked."""

from __future__ import annotations

import io
import json

import pytest
import torch

from mumur.data.dataset import RetrievalDataset
from mumur.errors import TranslationError, UnsupportedLanguageError
from mumur.translate import (
    GenerationOptions,
    Seq2SeqTranslator,
    TranslationCache,
    language_code,
    load_translations,
    marian_target_tokens,
    merge_translations,
    model_identity,
    normalize_language,
    resolve_model_name,
    save_translations,
    translate_dataset,
    translate_texts,
)
from mumur.translate.codes import M2M100_CODES, MBART50_CODES, NLLB_CODES

torch.set_num_threads(1)

SENTENCES = [
    "a red circle moves left on the beach", "two blue squares at night",
    "a small green star grows", "the large yellow heart rotates on snow",
    "a purple triangle stays still on grass", "an orange star shrinks",
    "a white heart moves up", "black squares move down at night",
]
TINY = {"d_model": 16, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
        "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32,
        "max_position_embeddings": 64}
FAST = GenerationOptions(num_beams=1, max_new_tokens=4)


def _train_spm(path):
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES * 3), model_writer=buf, vocab_size=40,
        model_type="unigram", hard_vocab_limit=False, minloglevel=2)
    path.write_bytes(buf.getvalue())
    return spm.SentencePieceProcessor(model_file=str(path))


def _build_marian(folder, spm_path, sp, target_codes=()):
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    vocab = {"</s>": 0, "<unk>": 1}
    for code in target_codes:
        vocab[code] = len(vocab)
    for i in range(sp.get_piece_size()):
        vocab.setdefault(sp.id_to_piece(i), len(vocab))
    vocab["<pad>"] = len(vocab)
    vocab_file = folder.parent / f"{folder.name}-vocab.json"
    vocab_file.write_text(json.dumps(vocab))
    MarianTokenizer(str(spm_path), str(spm_path), str(vocab_file)).save_pretrained(folder)
    cfg = MarianConfig(vocab_size=len(vocab), pad_token_id=vocab["<pad>"], eos_token_id=0,
                       decoder_start_token_id=vocab["<pad>"], **TINY)
    torch.manual_seed(0)
    MarianMTModel(cfg).save_pretrained(folder)


def _build_m2m100(folder, spm_path, sp):
    from transformers import M2M100Config, M2M100ForConditionalGeneration, M2M100Tokenizer

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for i in range(sp.get_piece_size()):
        vocab.setdefault(sp.id_to_piece(i), len(vocab))
    vocab_file = folder.parent / "m2m-vocab.json"
    vocab_file.write_text(json.dumps(vocab))
    tok = M2M100Tokenizer(str(vocab_file), str(spm_path))
    tok.save_pretrained(folder)
    # Language ids follow the sentencepiece vocabulary, then the made-up words (as m2m100_418M).
    n = tok.encoder_size + len(tok.lang_code_to_id) + tok.num_madeup_words
    cfg = M2M100Config(vocab_size=n, pad_token_id=1, eos_token_id=2, bos_token_id=0,
                       decoder_start_token_id=2, **TINY)
    torch.manual_seed(0)
    M2M100ForConditionalGeneration(cfg).save_pretrained(folder)


def _build_nllb(folder):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace()
    bpe.train_from_iterator(SENTENCES, trainers.BpeTrainer(
        vocab_size=60, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False))
    spec = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split()) for m in spec["merges"]]
    tok = NllbTokenizer(vocab=spec["vocab"], merges=merges)  # adds the 202 FLORES-200 codes
    tok.save_pretrained(folder)
    cfg = M2M100Config(vocab_size=len(tok), pad_token_id=1, eos_token_id=2, bos_token_id=0,
                       decoder_start_token_id=2, **TINY)
    torch.manual_seed(0)
    M2M100ForConditionalGeneration(cfg).save_pretrained(folder)


def _build_mbart50(folder, sp):
    from transformers import MBart50Tokenizer, MBartConfig, MBartForConditionalGeneration

    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    tok = MBart50Tokenizer(vocab=pieces)  # reorders to fairseq ids, adds the 52 codes + <mask>
    tok.save_pretrained(folder)
    cfg = MBartConfig(vocab_size=len(tok), pad_token_id=1, eos_token_id=2, bos_token_id=0,
                      decoder_start_token_id=2, **TINY)
    torch.manual_seed(0)
    MBartForConditionalGeneration(cfg).save_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Folders of tiny random checkpoints: {kind: path}."""
    root = tmp_path_factory.mktemp("mt")
    spm_path = root / "sp.model"
    sp = _train_spm(spm_path)
    paths = {
        "marian-de": root / "opus-mt-en-de",
        "marian-fr": root / "opus-mt-en-fr",
        "marian-multi": root / "opus-mt-en-mul",
        "m2m100": root / "m2m100",
        "nllb": root / "nllb",
        "mbart50": root / "mbart50",
    }
    _build_marian(paths["marian-de"], spm_path, sp)
    _build_marian(paths["marian-fr"], spm_path, sp)
    _build_marian(paths["marian-multi"], spm_path, sp, (">>de<<", ">>fra<<", ">>cmn_Hans<<"))
    _build_m2m100(paths["m2m100"], spm_path, sp)
    _build_nllb(paths["nllb"])
    _build_mbart50(paths["mbart50"], sp)
    return paths


@pytest.fixture(scope="module")
def loaded(tiny_models):
    cache: dict[str, Seq2SeqTranslator] = {}

    def get(kind):
        if kind not in cache:
            cache[kind] = Seq2SeqTranslator(str(tiny_models[kind]))
        return cache[kind]

    return get


def _count_generate(translator, fail_after=None):
    """Wrap `translator.model.generate`: count calls and texts, optionally raise after k calls."""
    calls = {"n": 0, "texts": 0}
    original = translator.model.generate

    def generate(**kwargs):
        if fail_after is not None and calls["n"] >= fail_after:
            raise RuntimeError("simulated crash")
        calls["n"] += 1
        calls["texts"] += kwargs["input_ids"].shape[0]
        return original(**kwargs)

    translator.model.generate = generate
    return calls, lambda: setattr(translator.model, "generate", original)


# --- codes --------------------------------------------------------------------------------


def test_code_tables_match_the_tokenizers():
    from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES as M2M
    from transformers.models.mbart50.tokenization_mbart50 import FAIRSEQ_LANGUAGE_CODES as MB50
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES as NLLB

    assert set(M2M100_CODES.values()) == set(M2M["m2m100"])
    assert sorted(MBART50_CODES.values()) == sorted(MB50)
    assert set(NLLB_CODES.values()) <= set(NLLB)
    assert len(set(NLLB_CODES.values())) == len(NLLB_CODES)  # no two tags share a code
    from mumur.translate.codes import _NLLB_SCRIPT_VARIANTS

    assert set(_NLLB_SCRIPT_VARIANTS.values()) <= set(NLLB)


@pytest.mark.parametrize("family,lang,code", [
    ("nllb", "en", "eng_Latn"), ("nllb", "de", "deu_Latn"), ("nllb", "zh", "zho_Hans"),
    ("nllb", "zh-TW", "zho_Hant"), ("nllb", "ja", "jpn_Jpan"), ("nllb", "ar", "arb_Arab"),
    ("mbart50", "en", "en_XX"), ("mbart50", "de", "de_DE"), ("mbart50", "fr", "fr_XX"),
    ("mbart50", "zh_CN", "zh_CN"), ("mbart50", "ja", "ja_XX"), ("mbart50", "pt-BR", "pt_XX"),
    ("m2m100", "de", "de"), ("m2m100", "zh-Hans", "zh"), ("m2m100", "iw", "he"),
])
def test_language_code(family, lang, code):
    assert language_code(family, lang) == code


@pytest.mark.parametrize("family,lang", [
    ("mbart50", "zh-tw"), ("mbart50", "el"), ("m2m100", "zh-Hant"), ("nllb", "xx"),
    ("m2m100", "tlh"),
])
def test_unsupported_language_is_a_typed_error(family, lang):
    with pytest.raises(UnsupportedLanguageError) as err:
        language_code(family, lang)
    assert err.value.language == lang and err.value.family == family
    assert lang in str(err.value)


@pytest.mark.parametrize("tag,canon", [
    ("zh-Hant", "zh-tw"), ("zh-Hant-TW", "zh-tw"), ("zh-Hant-HK", "zh-tw"), ("zh-MO", "zh-tw"),
    ("zh-Hans-CN", "zh"), ("zh-SG", "zh"), ("sr-Latn", "sr-latn"), ("sr_Latn_RS", "sr-latn"),
    ("sr-Cyrl", "sr-cyrl"), ("sr-RS", "sr"), ("de-Latn", "de"), ("ru-Latn", "ru-latn"),
])
def test_script_subtags_survive_normalisation(tag, canon):
    assert normalize_language(tag) == canon


@pytest.mark.parametrize("family,lang,code", [
    ("nllb", "zh-Hant-TW", "zho_Hant"), ("nllb", "zh-Hant-HK", "zho_Hant"),
    ("nllb", "zh-HK", "zho_Hant"), ("nllb", "zh-Hans-CN", "zho_Hans"),
    ("nllb", "sr-Cyrl", "srp_Cyrl"), ("nllb", "sr-Cyrl-RS", "srp_Cyrl"),
    ("nllb", "ks-Deva", "kas_Deva"), ("nllb", "de-Latn", "deu_Latn"),
    ("m2m100", "zh-Hans-SG", "zh"), ("mbart50", "zh-Hans", "zh_CN"), ("mbart50", "ru-Cyrl", "ru_RU"),
])
def test_script_subtags_map_to_the_script_code(family, lang, code):
    assert language_code(family, lang) == code


@pytest.mark.parametrize("family,lang,reason", [
    ("nllb", "sr-Latn", "no sr code in Latn script"), ("nllb", "uz-Cyrl", "no uz code in Cyrl"),
    ("nllb", "zh-Latn", "no zh code in Latn"), ("m2m100", "sr-Latn", "does not select the Latn"),
    ("m2m100", "sr-Cyrl", "does not select the Cyrl"), ("m2m100", "zh-Hant-TW", "Traditional"),
    ("m2m100", "zh-HK", "Traditional"), ("mbart50", "zh-Hant-HK", "Traditional"),
    ("mbart50", "ru-Latn", "does not select the Latn"), ("mbart50", "sr-Latn", "supported"),
])
def test_script_subtags_a_family_cannot_express_are_refused(family, lang, reason):
    with pytest.raises(UnsupportedLanguageError, match=reason) as err:
        language_code(family, lang)
    assert err.value.language == lang and err.value.family == family
    assert lang in str(err.value) and family in str(err.value) and "\n" not in str(err.value)


def test_marian_script_subtags(loaded):
    assert marian_target_tokens("sr-Latn") == [">>srp_Latn<<"]
    assert marian_target_tokens("sr-Cyrl") == [">>srp_Cyrl<<"]
    multi = loaded("marian-multi")  # target tokens >>de<<, >>fra<<, >>cmn_Hans<<
    assert multi.target_token("zh-Hans-CN") == ">>cmn_Hans<<"
    with pytest.raises(UnsupportedLanguageError, match="zh-Hant-TW"):
        multi.target_token("zh-Hant-TW")  # not silently Simplified
    with pytest.raises(UnsupportedLanguageError, match="marian"):
        multi.target_token("sr-Latn")
    per_pair = loaded("marian-de")  # opus-mt-en-de: no target tokens
    assert per_pair.target_token("de-Latn") is None
    with pytest.raises(UnsupportedLanguageError, match="cannot select the script of 'de-Cyrl'"):
        per_pair.target_token("de-Cyrl")


def test_normalize_and_marian_tokens():
    assert normalize_language("ZH_hk") == "zh-tw" and normalize_language("pt-BR") == "pt"
    assert marian_target_tokens("zh-TW")[0] == ">>cmn_Hant<<"
    assert marian_target_tokens("fr")[:3] == [">>fr<<", ">>fra_Latn<<", ">>fra<<"]
    assert resolve_model_name("Helsinki-NLP/opus-mt-en-{tgt}", "zh-TW") == \
        "Helsinki-NLP/opus-mt-en-zh"


# --- families -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind,family,src_token,tgt_token", [
    ("m2m100", "m2m100", "__en__", "__de__"),
    ("nllb", "nllb", "eng_Latn", "deu_Latn"),
    ("mbart50", "mbart50", "en_XX", "de_DE"),
])
def test_forced_bos_is_the_target_code(loaded, kind, family, src_token, tgt_token):
    tr = loaded(kind)
    assert tr.family == family
    tok = tr.tokenizer
    tgt_id = tok.convert_tokens_to_ids(tgt_token)
    assert tgt_id != tok.unk_token_id
    assert tr.generate_kwargs("de") == {"forced_bos_token_id": tgt_id}
    enc = tr.encode(SENTENCES[:2], "en", "de")
    # source code first, </s> last (non-padded row), as the family's tokenizer defines it
    assert (enc["input_ids"][:, 0] == tok.convert_tokens_to_ids(src_token)).all()
    ids = tr.generate_ids(SENTENCES[:2], "en", "de", FAST)  # (B, L_out)
    assert (ids[:, 0] == tr.model.config.decoder_start_token_id).all()
    assert (ids[:, 1] == tgt_id).all()
    fr = tr.generate_ids(SENTENCES[:1], "en", "fr", FAST)
    assert fr[0, 1] != tgt_id
    out = tr.translate(SENTENCES[:3], "en", "de", FAST)
    assert len(out) == 3 and all(isinstance(t, str) for t in out)


def test_marian_multi_target_prefix(loaded):
    tr = loaded("marian-multi")
    assert tr.family == "marian"
    assert tr.target_token("de") == ">>de<<" and tr.target_token("fr") == ">>fra<<"
    assert tr.target_token("zh") == ">>cmn_Hans<<"
    enc = tr.encode(SENTENCES[:2], "en", "fr")
    assert (enc["input_ids"][:, 0] == tr.tokenizer.convert_tokens_to_ids(">>fra<<")).all()
    assert tr.generate_kwargs("fr") == {}
    with pytest.raises(UnsupportedLanguageError, match="target tokens"):
        tr.translate(SENTENCES[:1], "en", "ja", FAST)


def test_marian_per_pair(loaded):
    tr = loaded("marian-de")
    enc = tr.encode(SENTENCES[:1], "en", "de")
    assert not any(t.startswith(">>") for t in tr.tokenizer.convert_ids_to_tokens(
        enc["input_ids"][0]))
    assert len(tr.translate(SENTENCES[:2], "en", "de", FAST)) == 2
    with pytest.raises(UnsupportedLanguageError, match="one model per pair"):
        tr.translate(SENTENCES[:1], "en", "fr", FAST)
    with pytest.raises(UnsupportedLanguageError, match="translates from en"):
        tr.translate(SENTENCES[:1], "ja", "de", FAST)


def test_unsupported_in_family_fails_before_any_model_call(loaded):
    tr = loaded("mbart50")
    calls, restore = _count_generate(tr)
    try:
        with pytest.raises(UnsupportedLanguageError):
            translate_texts(tr, SENTENCES, "en", "el", options=FAST, progress=False)
    finally:
        restore()
    assert calls["n"] == 0


def test_missing_model_is_a_typed_error(tmp_path):
    with pytest.raises(TranslationError, match="cannot load translation model"):
        Seq2SeqTranslator(str(tmp_path / "missing"))


def test_identity_follows_the_weights(tiny_models, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    src = tiny_models["nllb"]
    copy = tmp_path / "nllb"
    shutil.copytree(src, copy)
    assert model_identity(str(copy)) == model_identity(str(src))
    weights = load_file(copy / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 1.0
    save_file(weights, copy / "model.safetensors", metadata={"format": "pt"})
    assert model_identity(str(copy)) != model_identity(str(src))


# --- batching and the cache ---------------------------------------------------------------


class RecordingTranslator:
    """A deterministic backend (reverses text) that records the batches it receives."""

    identity = "reverse@test"

    def __init__(self):
        self.batches: list[list[str]] = []

    def check_source(self, source_language):
        pass

    def target_token(self, target_language):
        return None

    def translate(self, texts, source_language, target_language, options=FAST):
        self.batches.append(list(texts))
        return [f"{target_language}:{t[::-1]}" for t in texts]


def test_sorted_batches_restore_the_original_order():
    texts = ["bb", "a", "dddd", "ccc", "a", "eeeee", "  ", "ffffff"]
    tr = RecordingTranslator()
    out = translate_texts(tr, texts, "en", "de", batch_size=2, progress=False)
    assert out == ["de:bb", "de:a", "de:dddd", "de:ccc", "de:a", "de:eeeee", "", "de:ffffff"]
    flat = [t for b in tr.batches for t in b]
    assert flat == ["ffffff", "eeeee", "dddd", "ccc", "bb", "a"]  # unique, longest first
    assert [len(b) for b in tr.batches] == [2, 2, 2]


def test_cache_second_run_makes_no_model_calls(loaded, tmp_path):
    tr = loaded("nllb")
    db = tmp_path / "cache.sqlite"
    calls, restore = _count_generate(tr)
    try:
        with TranslationCache(db) as cache:
            first = translate_texts(tr, SENTENCES, "en", "de", cache=cache, batch_size=3,
                                    options=FAST, progress=False)
        assert calls["n"] == 3 and calls["texts"] == len(SENTENCES)
        with TranslationCache(db) as cache:  # a new process would reopen the file like this
            assert len(cache) == len(SENTENCES)
            again = translate_texts(tr, SENTENCES, "en", "de", cache=cache, batch_size=3,
                                    options=FAST, progress=False)
            assert again == first and calls["n"] == 3
            # different decoding options change outputs, so they miss the cache
            translate_texts(tr, SENTENCES[:2], "en", "de", cache=cache, batch_size=3,
                            options=GenerationOptions(num_beams=2, max_new_tokens=4),
                            progress=False)
            assert calls["n"] == 4
    finally:
        restore()


def test_crash_then_rerun_translates_only_the_rest(loaded, tmp_path):
    tr = loaded("mbart50")
    with TranslationCache() as fresh:
        expected = translate_texts(tr, SENTENCES, "en", "fr", cache=fresh, batch_size=2,
                                   options=FAST, progress=False)
    db = tmp_path / "cache.sqlite"
    calls, restore = _count_generate(tr, fail_after=2)
    try:
        with TranslationCache(db) as cache, pytest.raises(RuntimeError, match="simulated"):
            translate_texts(tr, SENTENCES, "en", "fr", cache=cache, batch_size=2, options=FAST,
                            progress=False)
    finally:
        restore()
    assert calls["n"] == 2
    calls, restore = _count_generate(tr)
    try:
        with TranslationCache(db) as cache:
            assert len(cache) == 4  # two committed batches survived the crash
            out = translate_texts(tr, SENTENCES, "en", "fr", cache=cache, batch_size=2,
                                  options=FAST, progress=False)
    finally:
        restore()
    assert calls["n"] == 2 and calls["texts"] == len(SENTENCES) - 4
    assert out == expected


# --- dataset pipeline, JSON file, CLI -----------------------------------------------------


def _dataset():
    caps = [(0, "en", SENTENCES[0]), (0, "en", SENTENCES[1]), (1, "en", SENTENCES[2]),
            (2, "en", SENTENCES[3]), (2, "de", "ein gelbes Herz"), (1, "fr", "une étoile")]
    return RetrievalDataset(name="tiny", split="train", items=["v0", "v1", "v2"], captions=caps)


def test_translate_dataset_adds_languages_and_round_trips_json(loaded, tmp_path):
    ds = _dataset()
    tr = loaded("m2m100")
    out = translate_dataset(ds, ["de", "zh"], tr, cache=tmp_path / "c.sqlite", options=FAST,
                            progress=False)
    assert out.languages == ["en", "de", "fr", "zh"]
    en_texts, en_items = ds.captions_for("en")
    for lang in ("de", "zh"):
        texts, items = out.captions_for(lang)
        assert items == en_items and len(texts) == len(en_texts)  # human "de" caption replaced
    assert out.captions_for("fr") == ds.captions_for("fr")
    assert out.info["translations"]["identity"]["de"] == tr.identity
    path = save_translations(out, tmp_path / "tr" / "train.json")
    data = load_translations(path)
    assert data["model"] == tr.identity and data["source"] == "en"
    assert set(data["captions"]) == {"v0", "v1", "v2"}
    assert data["captions"]["v0"]["de"] == out.captions_for("de")[0][:2]
    merged = merge_translations(ds, path)
    assert sorted(merged.captions) == sorted(out.captions)
    kept = translate_dataset(ds, ["de"], tr, options=FAST, progress=False,
                             replace_existing=False)
    assert len(kept.captions_for("de")[0]) == len(en_texts) + 1


def test_translate_dataset_with_one_marian_model_per_pair(tiny_models):
    template = str(tiny_models["marian-de"]).replace("opus-mt-en-de", "opus-mt-en-{tgt}")
    out = translate_dataset(_dataset(), ["de", "fr"], template, options=FAST, progress=False)
    ids = out.info["translations"]["identity"]
    assert ids["de"].startswith("opus-mt-en-de@") and ids["fr"].startswith("opus-mt-en-fr@")
    assert len(out.captions_for("fr")[0]) == 4


def test_translate_dataset_checks_every_language_first(loaded):
    rec = RecordingTranslator()
    tr = loaded("mbart50")
    calls, restore = _count_generate(tr)
    try:
        with pytest.raises(UnsupportedLanguageError):
            translate_dataset(_dataset(), ["de", "el"], tr, options=FAST, progress=False)
    finally:
        restore()
    assert calls["n"] == 0
    from mumur.errors import DatasetError

    with pytest.raises(DatasetError, match="no 'ja' captions"):
        translate_dataset(_dataset(), ["de"], rec, source="ja", progress=False)


def test_cli_translate(tiny_models, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import mumur.data
    from mumur.cli import app

    seen = {}

    def fake_load_benchmark(name, root, split="test", **options):
        seen.update(name=name, root=str(root), split=split)
        return _dataset()

    monkeypatch.setattr(mumur.data, "load_benchmark", fake_load_benchmark)
    out = tmp_path / "de.json"
    args = ["translate", "--dataset", "msrvtt-9k", "--root", str(tmp_path), "--split", "train",
            "--languages", "de,ja", "--model", str(tiny_models["nllb"]), "--out", str(out),
            "--cache", str(tmp_path / "c.sqlite"), "--batch-size", "2", "--num-beams", "1",
            "--max-new-tokens", "3", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen == {"name": "msrvtt-9k", "root": str(tmp_path), "split": "train"}
    data = json.loads(out.read_text())
    assert data["source"] == "en" and set(data["captions"]["v0"]) == {"de", "ja"}
    args[args.index("de,ja")] = "tlh"
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and isinstance(result.exception, UnsupportedLanguageError)
