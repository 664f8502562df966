"""Hugging Face seq2seq translation backends: MarianMT, M2M100, NLLB-200 and mBART-50.

One class, `Seq2SeqTranslator`, loads any of the four families through
`AutoTokenizer/AutoModelForSeq2SeqLM.from_pretrained(name_or_path)` (a hub id and a local folder
take the same path) and sets the target language the way each family expects:

- Marian: per-pair models need nothing; multi-target models need a `>>xx<<` token prefixed to the
  source text (the target tokens are read from the checkpoint's vocabulary).
- M2M100: `tokenizer.src_lang = src`, `forced_bos_token_id = tokenizer.get_lang_id(tgt)`.
- NLLB-200: `tokenizer.src_lang = "eng_Latn"`,
  `forced_bos_token_id = tokenizer.convert_tokens_to_ids("deu_Latn")`.
- mBART-50 (the MT model used by MuMUR, Tang et al. 2020): `tokenizer.src_lang = "en_XX"`,
  `forced_bos_token_id = tokenizer.lang_code_to_id["de_DE"]`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import TranslationError, UnsupportedLanguageError
from .codes import language_code, marian_target_tokens, normalize_language

__all__ = ["GenerationOptions", "Seq2SeqTranslator", "detect_family", "model_identity",
           "resolve_model_name"]

log = logging.getLogger(__name__)

# `Helsinki-NLP/opus-mt-en-de`, `opus-mt-tc-big-en-ko`, a local folder named `opus-mt-en-de`.
_OPUS_PAIR = re.compile(r"opus-mt-(?:tc-(?:big|base)-)?([A-Za-z]{2,3}(?:_[A-Za-z]+)?)-"
                        r"([A-Za-z]{2,3}(?:_[A-Za-z]+)?)$")
_FULL_HASH_BYTES = 16 << 20  # files up to 16 MiB are hashed whole
_EDGE_BYTES = 1 << 20  # larger ones: size + first and last MiB


@dataclass(frozen=True)
class GenerationOptions:
    """Decoding options; all of them change outputs, so all are part of the cache key.

    Args:
        num_beams: beam size (1 = greedy).
        max_new_tokens: longest translation in tokens.
        max_input_tokens: source texts are truncated to this many tokens.
    """

    num_beams: int = 4
    max_new_tokens: int = 128
    max_input_tokens: int = 256

    def as_dict(self) -> dict:
        return asdict(self)


def resolve_model_name(model: str, target_language: str) -> str:
    """Fill a `{tgt}` placeholder (one Marian model per pair) with the target's ISO 639-1 tag.

    Args:
        model: hub id or folder, e.g. `Helsinki-NLP/opus-mt-en-{tgt}`.
        target_language: ISO 639-1 tag.

    Returns:
        The model name for this target (`Helsinki-NLP/opus-mt-en-de`); unchanged without `{tgt}`.
    """
    if "{tgt}" not in model:
        return model
    # opus-mt has one zh model with script tokens (>>cmn_Hans<<, >>cmn_Hant<<) for both scripts.
    return model.replace("{tgt}", normalize_language(target_language).split("-")[0])


def _token_id(tokenizer, token: str) -> int | None:
    """The id of `token` in the tokenizer, None if it is unknown."""
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or (tokenizer.unk_token_id is not None and tid == tokenizer.unk_token_id
                       and token != tokenizer.unk_token):
        return None
    return int(tid)


def detect_family(model_type: str, tokenizer) -> str:
    """Translation family of a checkpoint from its config `model_type` and its tokenizer.

    Args:
        model_type: `config.model_type` (`marian`, `m2m_100`, `mbart`, `nllb-moe`).
        tokenizer: the checkpoint's tokenizer (NLLB uses the M2M100 architecture and is told
            apart by its FLORES-200 language tokens).

    Returns:
        One of `marian`, `m2m100`, `nllb`, `mbart50`.

    Raises:
        TranslationError: for any other model type.
    """
    if model_type == "marian":
        return "marian"
    if model_type in ("m2m_100", "nllb-moe"):
        if _token_id(tokenizer, "eng_Latn") is not None:
            return "nllb"
        if hasattr(tokenizer, "get_lang_id"):
            return "m2m100"
    if model_type == "mbart" and _token_id(tokenizer, "en_XX") is not None:
        return "mbart50"
    raise TranslationError(
        f"unsupported translation model (model_type={model_type!r}, tokenizer="
        f"{type(tokenizer).__name__}); supported: MarianMT, M2M100, NLLB-200, mBART-50")


def _file_digest(h, path: Path) -> None:
    size = path.stat().st_size
    h.update(f"{path.name}:{size}:".encode())
    with open(path, "rb") as f:
        if size <= _FULL_HASH_BYTES:
            h.update(f.read())
        else:
            h.update(f.read(_EDGE_BYTES))
            f.seek(size - _EDGE_BYTES)
            h.update(f.read(_EDGE_BYTES))


def model_identity(name_or_path: str) -> str:
    """A stable string naming a checkpoint's weights, tokenizer and generation config.

    Args:
        name_or_path: a local folder or a hub id.

    Returns:
        `folder-name@sha256:<16 hex>` for a folder (hash of its files: small files whole, large
        weight files by size and their first and last MiB); `repo/id@<commit>` for a hub id found
        in the local hub cache, else the id itself.
    """
    p = Path(name_or_path)
    if p.is_dir():
        h = hashlib.sha256()
        for f in sorted(x for x in p.iterdir() if x.is_file() and not x.name.startswith(".")):
            _file_digest(h, f)
        return f"{p.resolve().name}@sha256:{h.hexdigest()[:16]}"
    try:
        from transformers.utils.hub import cached_file

        config = cached_file(name_or_path, "config.json", local_files_only=True)
    except (OSError, ValueError):  # not in the local cache: the id is the best name there is
        config = None
    if config is not None and Path(config).parent.parent.name == "snapshots":
        return f"{name_or_path}@{Path(config).parent.name}"
    return str(name_or_path)


class Seq2SeqTranslator:
    """A translation checkpoint of one of the supported families.

    Args:
        name_or_path: hub id (`facebook/mbart-large-50-many-to-many-mmt`) or local folder.
        device: torch device for the model.

    Attributes:
        name: `name_or_path` as given.
        family: `marian`, `m2m100`, `nllb` or `mbart50`.
        identity: see `model_identity` (cache key).
        tokenizer, model: the loaded transformers objects.
    """

    def __init__(self, name_or_path: str, device: str | torch.device = "cpu"):
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.name = str(name_or_path)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.name)
            self.model = AutoModelForSeq2SeqLM.from_pretrained(self.name)
        except (OSError, ValueError) as exc:
            raise TranslationError(f"cannot load translation model {self.name!r}: {exc}") from exc
        self.family = detect_family(self.model.config.model_type, self.tokenizer)
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.identity = model_identity(self.name)
        self._marian_codes = list(getattr(self.tokenizer, "supported_language_codes", []) or [])
        self._assumed_targets: set[str] = set()

    # --- language handling -------------------------------------------------------------------

    def _marian_pair(self) -> tuple[str, str] | None:
        m = _OPUS_PAIR.search(self.name.rstrip("/"))
        return (m.group(1), m.group(2)) if m else None

    def target_token(self, target_language: str) -> str | None:
        """The code/token naming the target language for this checkpoint.

        Args:
            target_language: ISO 639-1 tag.

        Returns:
            Marian multi-target: the `>>xx<<` prefix token; Marian per-pair: None; other
            families: the language-code token (`deu_Latn`, `de_DE`, `__de__`).

        Raises:
            UnsupportedLanguageError: the family or this checkpoint has no such language.
        """
        if self.family != "marian":
            code = language_code(self.family, target_language)
            self._check_code(code, target_language)
            return self._code_token(code)
        if self._marian_codes:
            for token in marian_target_tokens(target_language):
                if token in self._marian_codes:
                    return token
            shown = ", ".join(self._marian_codes[:20])
            raise UnsupportedLanguageError(
                target_language, "marian", f"{self.name} has target tokens {shown}"
                + (" ..." if len(self._marian_codes) > 20 else ""))
        pair = self._marian_pair()
        if pair is None:
            if target_language not in self._assumed_targets:
                self._assumed_targets.add(target_language)
                log.warning("cannot tell the target language of %s from its name; assuming %s",
                            self.name, target_language)
            return None
        target, named = normalize_language(target_language), normalize_language(pair[1])
        if named.split("-")[0] != target.split("-")[0]:
            raise UnsupportedLanguageError(
                target_language, "marian",
                f"{self.name} translates {pair[0]}->{pair[1]} only; use one model per pair, "
                "e.g. --model 'Helsinki-NLP/opus-mt-en-{tgt}'")
        if target != named:  # a script (zh-tw, sr-latn) the model's name does not give
            raise UnsupportedLanguageError(
                target_language, "marian",
                f"{self.name} has no target tokens, so it cannot select the script of "
                f"{target_language!r}")
        return None

    def check_source(self, source_language: str) -> None:
        """Raise UnsupportedLanguageError when the checkpoint cannot read `source_language`."""
        if self.family != "marian":
            self._check_code(language_code(self.family, source_language), source_language)
            return
        pair = self._marian_pair()
        if pair is not None and pair[0].lower() not in ("mul",) and \
                normalize_language(pair[0]) != normalize_language(source_language):
            raise UnsupportedLanguageError(
                source_language, "marian", f"{self.name} translates from {pair[0]}")

    def _code_token(self, code: str) -> str:
        return f"__{code}__" if self.family == "m2m100" else code

    def _check_code(self, code: str, language: str) -> None:
        if self.family == "m2m100" or self.family == "mbart50":
            known = code in getattr(self.tokenizer, "lang_code_to_id", {})
        else:
            known = _token_id(self.tokenizer, code) is not None
        if not known:
            raise UnsupportedLanguageError(
                language, self.family, f"code {code!r} is not in the vocabulary of {self.name}")

    # --- generation --------------------------------------------------------------------------

    def generate_kwargs(self, target_language: str) -> dict:
        """Family-specific `generate` arguments that select the target language.

        Args:
            target_language: ISO 639-1 tag.

        Returns:
            `{"forced_bos_token_id": id}` for M2M100 / NLLB / mBART-50, `{}` for Marian (whose
            target is chosen by the model or by the source prefix token).
        """
        token = self.target_token(target_language)
        if self.family == "m2m100":
            return {"forced_bos_token_id": self.tokenizer.get_lang_id(
                language_code("m2m100", target_language))}
        if self.family == "nllb":
            return {"forced_bos_token_id": self.tokenizer.convert_tokens_to_ids(token)}
        if self.family == "mbart50":
            return {"forced_bos_token_id": self.tokenizer.lang_code_to_id[token]}
        return {}

    def encode(self, texts: list[str], source_language: str, target_language: str,
               options: GenerationOptions = GenerationOptions()):
        """Tokenise source texts for this family (source language code / Marian target prefix).

        Args:
            texts: source sentences.
            source_language: ISO 639-1 tag of `texts`.
            target_language: ISO 639-1 tag (Marian multi-target models put it in the input).
            options: `max_input_tokens` truncates.

        Returns:
            A `BatchEncoding` with `input_ids`, `attention_mask` `(B, L)` on the model's device.
        """
        self.check_source(source_language)
        if self.family == "marian":
            token = self.target_token(target_language)
            if token is not None:
                texts = [f"{token} {t}" for t in texts]
        else:
            self.tokenizer.src_lang = language_code(self.family, source_language)
        enc = self.tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True,
                             max_length=options.max_input_tokens)
        return enc.to(self.device)

    @torch.inference_mode()
    def generate_ids(self, texts: list[str], source_language: str, target_language: str,
                     options: GenerationOptions = GenerationOptions()) -> torch.Tensor:
        """Token ids of the translations, `(B, L_out)`, starting with the decoder start token."""
        enc = self.encode(texts, source_language, target_language, options)
        return self.model.generate(
            **enc, num_beams=options.num_beams, max_new_tokens=options.max_new_tokens,
            **self.generate_kwargs(target_language))

    def translate(self, texts: list[str], source_language: str, target_language: str,
                  options: GenerationOptions = GenerationOptions()) -> list[str]:
        """Translate one batch.

        Args:
            texts: source sentences (one batch; the pipeline does batching and caching).
            source_language: ISO 639-1 tag of `texts`.
            target_language: ISO 639-1 tag.
            options: decoding options.

        Returns:
            Translations, parallel to `texts`.
        """
        if not texts:
            return []
        ids = self.generate_ids(texts, source_language, target_language, options)
        out = self.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return [t.strip() for t in out]
