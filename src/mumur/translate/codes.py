"""Language codes per translation-model family.

Users name languages with ISO 639-1 tags (`de`, `zh`, optionally with a region or script:
`zh-TW`, `zh-Hant`, `pt-BR`). Each model family spells languages its own way:

- MarianMT (opus-mt): one model per pair (`Helsinki-NLP/opus-mt-en-de`), or a multi-target model
  whose vocabulary holds target tokens `>>xx<<` that prefix the source text; the tokens are
  ISO 639-1 (`>>fr<<`, opus-mt-en-ROMANCE) or ISO 639-3 with an optional script (`>>deu<<`,
  `>>cmn_Hans<<`, Tatoeba models). `marian_target_tokens` lists the candidates in preference order
  and the backend picks the first one the checkpoint's vocabulary holds.
- M2M100 (`facebook/m2m100_418M`): ISO 639-1 codes (`de`, token `__de__`).
- NLLB-200 (`facebook/nllb-200-distilled-600M`): FLORES-200 codes (`deu_Latn`, `zho_Hans`).
- mBART-50 (`facebook/mbart-large-50-many-to-many-mmt`, Tang et al. 2020): `de_DE`, `fr_XX`,
  `zh_CN`, `ja_XX`, ...

Script subtags (BCP 47: `sr-Latn`, `zh-Hant`, `zh-Hant-TW`; for Chinese the region implies the
script: TW/HK/MO Traditional, CN/SG/MY Simplified) are honoured or refused, never dropped. A family
honours a script only with a code that names it: NLLB codes carry their script (`zho_Hant`,
`srp_Cyrl`; there is no `srp_Latn`), multi-target Marian models have `>>srp_Latn<<`-style tokens.
M2M100 and mBART-50 codes carry no script: their `zh` / `zh_CN` is Simplified Chinese (no
Traditional code), and for other languages written in several scripts (`sr`, `uz`, `az`, ...)
the code does not say which, so an explicit script is refused there with an
`UnsupportedLanguageError` naming the tag and the family.

The code tables are the ones the checkpoints' tokenizers define (transformers
`tokenization_m2m_100.py`, `tokenization_nllb.py`, `tokenization_mbart50.py`); the test suite checks
every value here against those lists.
"""

from __future__ import annotations

from ..errors import UnsupportedLanguageError

__all__ = [
    "FAMILIES",
    "M2M100_CODES",
    "MBART50_CODES",
    "NLLB_CODES",
    "language_code",
    "marian_target_tokens",
    "normalize_language",
    "supported_languages",
]

FAMILIES = ("marian", "m2m100", "nllb", "mbart50")

# Chinese regions that imply a script; canonical tags: `zh` (Simplified), `zh-tw` (Traditional).
_TRADITIONAL_REGIONS = {"tw", "hk", "mo"}
_SIMPLIFIED_REGIONS = {"cn", "sg", "my"}
# Languages commonly written in more than one script: a code without a script (M2M100 `sr`,
# opus-mt `>>sr<<`) does not say which one it produces.
_MULTI_SCRIPT = {"sr", "bs", "uz", "az", "kk", "tg", "mn", "pa", "sd", "ks", "ku", "ms"}
# Deprecated or alternative ISO 639-1 tags -> the tag used here.
_ALIASES = {"iw": "he", "in": "id", "ji": "yi", "jw": "jv", "nb": "no", "fil": "tl"}

# M2M100 (100 languages): its codes are ISO 639-1 tags except `ast`, `ceb`, `ilo` (639-2/3) and
# `ns` (Northern Sotho, ISO 639-1 has none; `nso` is its 639-2 code).
_M2M100_LIST = [
    "af", "am", "ar", "ast", "az", "ba", "be", "bg", "bn", "br", "bs", "ca", "ceb", "cs", "cy",
    "da", "de", "el", "en", "es", "et", "fa", "ff", "fi", "fr", "fy", "ga", "gd", "gl", "gu", "ha",
    "he", "hi", "hr", "ht", "hu", "hy", "id", "ig", "ilo", "is", "it", "ja", "jv", "ka", "kk", "km",
    "kn", "ko", "lb", "lg", "ln", "lo", "lt", "lv", "mg", "mk", "ml", "mn", "mr", "ms", "my", "ne",
    "nl", "no", "ns", "oc", "or", "pa", "pl", "ps", "pt", "ro", "ru", "sd", "si", "sk", "sl", "so",
    "sq", "sr", "ss", "su", "sv", "sw", "ta", "th", "tl", "tn", "tr", "uk", "ur", "uz", "vi", "wo",
    "xh", "yi", "yo", "zh", "zu",
]
M2M100_CODES: dict[str, str] = {c: c for c in _M2M100_LIST}
M2M100_CODES["nso"] = "ns"

# mBART-50 language codes (fairseq `FAIRSEQ_LANGUAGE_CODES` of mbart-large-50), keyed by the
# ISO 639-1 tag that prefixes each code.
_MBART50_LIST = [
    "ar_AR", "cs_CZ", "de_DE", "en_XX", "es_XX", "et_EE", "fi_FI", "fr_XX", "gu_IN", "hi_IN",
    "it_IT", "ja_XX", "kk_KZ", "ko_KR", "lt_LT", "lv_LV", "my_MM", "ne_NP", "nl_XX", "ro_RO",
    "ru_RU", "si_LK", "tr_TR", "vi_VN", "zh_CN", "af_ZA", "az_AZ", "bn_IN", "fa_IR", "he_IL",
    "hr_HR", "id_ID", "ka_GE", "km_KH", "mk_MK", "ml_IN", "mn_MN", "mr_IN", "pl_PL", "ps_AF",
    "pt_XX", "sv_SE", "sw_KE", "ta_IN", "te_IN", "th_TH", "tl_XX", "uk_UA", "ur_PK", "xh_ZA",
    "gl_ES", "sl_SI",
]
MBART50_CODES: dict[str, str] = {code.split("_")[0]: code for code in _MBART50_LIST}

# NLLB-200: ISO 639-1 -> FLORES-200 code (language_Script). Where ISO 639-1 names a macrolanguage
# NLLB picks the standard variety: ar -> arb (Modern Standard Arabic), fa -> pes (Iranian
# Persian), ms -> zsm (Standard Malay), lv -> lvs, et -> est, mn -> khk (Halh), sw -> swh,
# uz -> uzn, sq -> als (Tosk), ne -> npi, om -> gaz, qu -> quy, ku -> kmr (Kurmanji), ps -> pbt,
# yi -> ydd, mg -> plt, ay -> ayr, ff -> fuv, no/nb -> nob, zh -> zho_Hans (Traditional: zh-tw ->
# zho_Hant).
NLLB_CODES: dict[str, str] = {
    "af": "afr_Latn", "ak": "aka_Latn", "am": "amh_Ethi", "ar": "arb_Arab", "as": "asm_Beng",
    "ay": "ayr_Latn", "az": "azj_Latn", "ba": "bak_Cyrl", "be": "bel_Cyrl", "bg": "bul_Cyrl",
    "bm": "bam_Latn", "bn": "ben_Beng", "bo": "bod_Tibt", "bs": "bos_Latn", "ca": "cat_Latn",
    "cs": "ces_Latn", "cy": "cym_Latn", "da": "dan_Latn", "de": "deu_Latn", "dz": "dzo_Tibt",
    "ee": "ewe_Latn", "el": "ell_Grek", "en": "eng_Latn", "eo": "epo_Latn", "es": "spa_Latn",
    "et": "est_Latn", "eu": "eus_Latn", "fa": "pes_Arab", "ff": "fuv_Latn", "fi": "fin_Latn",
    "fj": "fij_Latn", "fo": "fao_Latn", "fr": "fra_Latn", "ga": "gle_Latn", "gd": "gla_Latn",
    "gl": "glg_Latn", "gn": "grn_Latn", "gu": "guj_Gujr", "ha": "hau_Latn", "he": "heb_Hebr",
    "hi": "hin_Deva", "hr": "hrv_Latn", "ht": "hat_Latn", "hu": "hun_Latn", "hy": "hye_Armn",
    "id": "ind_Latn", "ig": "ibo_Latn", "is": "isl_Latn", "it": "ita_Latn", "ja": "jpn_Jpan",
    "jv": "jav_Latn", "ka": "kat_Geor", "kg": "kon_Latn", "ki": "kik_Latn", "kk": "kaz_Cyrl",
    "km": "khm_Khmr", "kn": "kan_Knda", "ko": "kor_Hang", "ks": "kas_Arab", "ku": "kmr_Latn",
    "ky": "kir_Cyrl", "lb": "ltz_Latn", "lg": "lug_Latn", "li": "lim_Latn", "ln": "lin_Latn",
    "lo": "lao_Laoo", "lt": "lit_Latn", "lv": "lvs_Latn", "mg": "plt_Latn", "mi": "mri_Latn",
    "mk": "mkd_Cyrl", "ml": "mal_Mlym", "mn": "khk_Cyrl", "mr": "mar_Deva", "ms": "zsm_Latn",
    "mt": "mlt_Latn", "my": "mya_Mymr", "ne": "npi_Deva", "nl": "nld_Latn", "nn": "nno_Latn",
    "no": "nob_Latn", "ny": "nya_Latn", "oc": "oci_Latn", "om": "gaz_Latn", "or": "ory_Orya",
    "pa": "pan_Guru", "pl": "pol_Latn", "ps": "pbt_Arab", "pt": "por_Latn", "qu": "quy_Latn",
    "rn": "run_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl", "rw": "kin_Latn", "sa": "san_Deva",
    "sc": "srd_Latn", "sd": "snd_Arab", "sg": "sag_Latn", "si": "sin_Sinh", "sk": "slk_Latn",
    "sl": "slv_Latn", "sm": "smo_Latn", "sn": "sna_Latn", "so": "som_Latn", "sq": "als_Latn",
    "sr": "srp_Cyrl", "ss": "ssw_Latn", "st": "sot_Latn", "su": "sun_Latn", "sv": "swe_Latn",
    "sw": "swh_Latn", "ta": "tam_Taml", "te": "tel_Telu", "tg": "tgk_Cyrl", "th": "tha_Thai",
    "ti": "tir_Ethi", "tk": "tuk_Latn", "tl": "tgl_Latn", "tn": "tsn_Latn", "tr": "tur_Latn",
    "ts": "tso_Latn", "tt": "tat_Cyrl", "ug": "uig_Arab", "uk": "ukr_Cyrl", "ur": "urd_Arab",
    "uz": "uzn_Latn", "vi": "vie_Latn", "wo": "wol_Latn", "xh": "xho_Latn", "yi": "ydd_Hebr",
    "yo": "yor_Latn", "zh": "zho_Hans", "zh-tw": "zho_Hant", "zu": "zul_Latn",
}

# ISO 639-3 macrolanguage codes that Tatoeba-trained Marian models use where NLLB's FLORES code
# names an individual language (e.g. `>>ara<<` besides `>>arb<<`).
_ISO639_3_MACRO = {
    "ar": "ara", "fa": "fas", "ms": "msa", "lv": "lav", "mn": "mon", "sw": "swa", "uz": "uzb",
    "sq": "sqi", "ne": "nep", "om": "orm", "qu": "que", "ku": "kur", "ps": "pus", "yi": "yid",
    "mg": "mlg", "ay": "aym", "ff": "ful", "zh": "zho", "zh-tw": "zho", "no": "nor", "et": "est",
}

# NLLB codes in a script other than the language's default (FAIRSEQ_LANGUAGE_CODES), keyed by
# canonical tag; zh-tw -> zho_Hant is in NLLB_CODES itself.
_NLLB_SCRIPT_VARIANTS = {"ks-deva": "kas_Deva"}

_TABLES = {"m2m100": M2M100_CODES, "nllb": NLLB_CODES, "mbart50": MBART50_CODES}


def _split_script(canon: str) -> tuple[str, str | None]:
    """`sr-latn` -> (`sr`, `Latn`); `de` -> (`de`, None). `zh-tw` is a table key, not a script."""
    base, _, script = canon.partition("-")
    return (base, script.title()) if script and canon != "zh-tw" else (canon, None)


def _default_script(base: str) -> str | None:
    code = NLLB_CODES.get(base)
    return code.split("_")[1] if code else None


def normalize_language(tag: str) -> str:
    """Canonical form of a language tag: lower-case ISO 639-1, plus the script where it matters.

    Args:
        tag: `de`, `DE`, `zh_CN`, `zh-Hant-TW`, `pt-BR`, `sr-Latn`, ...

    Returns:
        The base tag (`pt-BR` -> `pt`, `de-Latn` -> `de`); Chinese is `zh` (Simplified: `zh-CN`,
        `zh-Hans`) or `zh-tw` (Traditional: `zh-TW`, `zh-HK`, `zh-MO`, `zh-Hant`, `zh-Hant-HK`);
        an explicit script stays when it is not the language's only one or not its usual one
        (`sr-Latn` -> `sr-latn`, `sr-Cyrl` -> `sr-cyrl`, `ru-Latn` -> `ru-latn`).

    Raises:
        UnsupportedLanguageError: for an empty tag.
    """
    t = str(tag).strip().lower().replace("_", "-")
    if not t:
        raise UnsupportedLanguageError(str(tag), "any", "empty language tag")
    base, *subtags = t.split("-")
    base = _ALIASES.get(base, base)
    script = next((p for p in subtags if len(p) == 4 and p.isalpha()), None)
    if base == "zh":
        if script is None:
            region = next((p for p in subtags if len(p) == 2), None)
            script = "hant" if region in _TRADITIONAL_REGIONS else "hans"
        return {"hans": "zh", "hant": "zh-tw"}.get(script, f"zh-{script}")
    if script is None or (base not in _MULTI_SCRIPT
                          and script.title() == _default_script(base)):
        return base
    return f"{base}-{script}"


def supported_languages(family: str) -> list[str]:
    """Canonical language tags a family has codes for (Marian: decided per checkpoint, so [])."""
    _check_family(family)
    return sorted(_TABLES.get(family, {}))


def language_code(family: str, language: str) -> str:
    """The family's code for a language (`nllb`, `de` -> `deu_Latn`).

    Args:
        family: one of `FAMILIES` except `marian` (see `marian_target_tokens`).
        language: an ISO 639-1 tag (region/script variants accepted, see `normalize_language`).

    Returns:
        The code the family's tokenizer uses (`de` for M2M100, `deu_Latn` for NLLB, `de_DE` for
        mBART-50).

    Raises:
        UnsupportedLanguageError: when the family has no code for the language.
    """
    _check_family(family)
    if family == "marian":
        raise ValueError("Marian codes depend on the checkpoint; use marian_target_tokens")
    canon = normalize_language(language)
    table = _TABLES[family]
    if canon in table:
        return table[canon]
    base, script = _split_script(canon)
    if family == "nllb" and script is not None:
        code = _NLLB_SCRIPT_VARIANTS.get(canon)
        if code is None and table.get(base, "").endswith(f"_{script}"):
            code = table[base]
        if code is not None:
            return code
    if canon == "zh-tw":
        reason = "it has no Traditional Chinese code (only Simplified)"
    elif script is not None and base in table:
        reason = (f"it has no {base} code in {script} script (only {table[base]!r})"
                  if family == "nllb" else
                  f"its {base} code {table[base]!r} does not select the {script} script")
    else:
        reason = f"supported: {', '.join(sorted(table))}"
    raise UnsupportedLanguageError(language, family, reason)


def marian_target_tokens(language: str) -> list[str]:
    """Candidate `>>xx<<` target tokens of multi-target Marian models, most specific first.

    Args:
        language: an ISO 639-1 tag.

    Returns:
        E.g. `zh` -> [`>>cmn_Hans<<`, `>>zho_Hans<<`, `>>zh<<`, `>>cmn<<`, `>>zho<<`],
        `de` -> [`>>de<<`, `>>deu_Latn<<`, `>>deu<<`]; an explicit script keeps only the tokens
        that name it: `sr-Latn` -> [`>>srp_Latn<<`], `sr-Cyrl` -> [`>>srp_Cyrl<<`].
    """
    canon = normalize_language(language)
    out: list[str] = []
    base, script = _split_script(canon)
    if script is not None:
        lang3 = NLLB_CODES[base].split("_")[0] if base in NLLB_CODES else base
        return [f">>{lang3}_{script}<<"]
    if canon in ("zh", "zh-tw"):
        script = "Hant" if canon == "zh-tw" else "Hans"
        out += [f"cmn_{script}", f"zho_{script}", "zh_tw" if canon == "zh-tw" else "zh", "cmn"]
    else:
        out.append(canon)
        flores = NLLB_CODES.get(canon)
        if flores:
            lang3, _script = flores.split("_")
            out += [flores, lang3]
    macro = _ISO639_3_MACRO.get(canon)
    if macro:
        out.append(macro)
    seen: dict[str, None] = {}
    for code in out:
        seen.setdefault(f">>{code}<<", None)
    return list(seen)


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown translation family {family!r}; known: {', '.join(FAMILIES)}")
