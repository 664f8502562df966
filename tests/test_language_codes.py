"""Per-query language codes for text towers that need one (NLLB-CLIP: FLORES-200).

The code comes from the query's language (given with --lang, or detected), never from the
interface language; the open_clip wrapper really puts it in front of the tokens. open_clip itself
does not import here (its factory needs torchvision, which does not load beside torch 2.13), so
the wrapper is tested with open_clip's own `HFTokenizer` (loaded from its file) over a real
`NllbTokenizer`, and a stand-in model; `tests/test_open_clip_backbones.py` runs the real
open_clip NLLB-CLIP and XLM-R CLIP where torchvision imports.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mumur.encoders.text import OpenClipTextEncoder
from mumur.errors import EncoderLoadError, QueryError
from mumur.index.language import (
    choose_branch,
    code_detection_languages,
    query_language_code,
)
from mumur.translate.codes import NLLB_CODES, supported_languages

torch.set_num_threads(1)


def _flores_200() -> set[str]:
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES

    return set(FAIRSEQ_LANGUAGE_CODES)


@pytest.mark.parametrize("language", supported_languages("nllb"))
def test_every_supported_language_gets_its_flores_code(language):
    code = query_language_code("nllb", language)
    assert code == NLLB_CODES[language] and code in _flores_200()
    chosen = choose_branch("whatever the text", language, ("en",), {"en": "nllb"})
    assert (chosen.language, chosen.code, chosen.detected) == (language, code, False)


def test_every_detectable_language_has_a_code():
    detectable = code_detection_languages("nllb")
    assert len(detectable) > 100 and {"de", "hi", "sw", "zh", "en"} <= set(detectable)
    assert all(query_language_code("nllb", lang) in _flores_200() for lang in detectable)


@pytest.mark.parametrize(("tag", "code"), [
    ("de-DE", "deu_Latn"), ("pt_BR", "por_Latn"), ("zh-TW", "zho_Hant"), ("zh-Hans", "zho_Hans"),
    ("zh", "zho_Hans"), ("nb", "nob_Latn"), ("ar", "arb_Arab"), ("EN", "eng_Latn"),
])
def test_region_and_script_variants(tag, code):
    assert choose_branch("x", tag, ("en",), {"en": "nllb"}).code == code


def test_language_without_a_code_is_refused_clearly():
    with pytest.raises(QueryError, match="nllb codes"):
        choose_branch("x", "sr-Latn", ("en",), {"en": "nllb"})  # NLLB has srp_Cyrl only
    with pytest.raises(QueryError, match="nllb codes"):
        choose_branch("x", "tlh", ("en",), {"en": "nllb"})


@pytest.mark.parametrize(("query", "code"), [
    ("ein Hund läuft am Strand entlang", "deu_Latn"),
    ("un chien qui court sur la plage", "fra_Latn"),
    ("собака бежит по пляжу", "rus_Cyrl"),
    ("ελληνικό σκυλί στην παραλία", "ell_Grek"),  # only the wide (NLLB) set has Greek
    ("a dog running along the beach at sunset", "eng_Latn"),
])
def test_detected_query_language_gives_the_code(query, code):
    chosen = choose_branch(query, None, ("en",), {"en": "nllb"})
    assert chosen.code == code and chosen.detected


def test_interface_language_is_never_used(monkeypatch):
    for var in ("LANG", "LC_ALL", "LANGUAGE", "LC_MESSAGES"):
        monkeypatch.setenv(var, "de_DE.UTF-8")
    chosen = choose_branch("a dog running along the beach at sunset", None, ("en",),
                           {"en": "nllb"})
    assert chosen.code == "eng_Latn"


def test_unknown_language_leaves_the_encoder_default():
    chosen = choose_branch("xyzzy", None, ("en",), {"en": "nllb"})
    assert chosen.language is None and chosen.code is None
    # encoders that need no code never trigger detection on a one-branch index
    assert choose_branch("ein Hund", None, ("en",), {"en": None}).language is None


# -- the open_clip wrapper, with open_clip's HFTokenizer over a real NLLB tokenizer ---------------


def _open_clip_hf_tokenizer_class():
    spec = importlib.util.find_spec("open_clip")
    if spec is None:
        pytest.skip("open_clip_torch not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "tokenizer.py"
    mod_spec = importlib.util.spec_from_file_location("_open_clip_tokenizer_nllb", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module.HFTokenizer


class _BagOfTokens(torch.nn.Module):
    """Stand-in for an open_clip CLIP: `encode_text` = mean token embedding (the language token
    included, so a lost code changes the embedding)."""

    def __init__(self, vocab: int, dim: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(vocab, dim)
        self.text_projection = torch.nn.Parameter(torch.eye(dim)).data

    def encode_text(self, tokens):
        return self.embed(tokens).mean(dim=1) @ self.text_projection  # (n, dim)


@pytest.fixture(scope="module")
def nllb_text_encoder(tmp_path_factory):
    from transformers import NllbTokenizer

    folder = tmp_path_factory.mktemp("nllb_tok")
    NllbTokenizer().save_pretrained(folder)
    hf_tokenizer_class = _open_clip_hf_tokenizer_class()
    tokenizer = hf_tokenizer_class(str(folder), context_length=8)
    model = _BagOfTokens(len(tokenizer.tokenizer))
    fake_open_clip = SimpleNamespace(get_tokenizer=lambda name: tokenizer)
    return OpenClipTextEncoder(fake_open_clip, model, "nllb-clip-base", "open_clip:nllb-clip-base")


def test_open_clip_nllb_wrapper_prefixes_the_query_code(nllb_text_encoder):
    enc = nllb_text_encoder
    assert enc.code_family == "nllb" and enc.default_language_code == "eng_Latn"
    hf = enc.tokenizer.tokenizer

    def expected(code):
        ids = hf(["ein Hund"], padding="max_length", max_length=8, return_tensors="pt")
        assert hf.convert_ids_to_tokens(int(ids["input_ids"][0, 0])) == code
        return torch.nn.functional.normalize(enc.model.encode_text(ids["input_ids"]), dim=-1)

    with enc.language("deu_Latn"):
        assert hf.convert_ids_to_tokens(enc.tokenizer(["ein Hund"])[0, 0].item()) == "deu_Latn"
        german = expected("deu_Latn")
    torch.testing.assert_close(enc.encode(["ein Hund"], language_code="deu_Latn"), german)
    english = enc.encode(["ein Hund"])  # the default, restored after the block
    assert hf.convert_ids_to_tokens(enc.tokenizer(["ein Hund"])[0, 0].item()) == "eng_Latn"
    assert not torch.allclose(english, german)
    with pytest.raises(EncoderLoadError, match="no language code 'deu'"):
        enc.encode(["ein Hund"], language_code="deu")


def test_retrieval_model_passes_the_code_to_the_tower(nllb_text_encoder):
    from mumur.model import create_model

    model = create_model("meanP", text_en=nllb_text_encoder, embed_dim=8, text_dim_en=8,
                         frame_dim=8, train_branches=("en",)).eval()
    assert model.language_code_family("en") == "nllb"
    got = model.encode_text(["ein Hund"], "en", language_code="deu_Latn")
    again = model.encode_text(["ein Hund"], "en", language_code="deu_Latn")
    english = model.encode_text(["ein Hund"], "en")
    torch.testing.assert_close(got, again)
    assert not torch.allclose(got, english)
