"""The catalogue of backbones an index can be built with (`mumur models`), and the default model
of a new index.

The data is `mumur/configs/catalogue/backbones.json`: per model its `--model` (and paired
`--text-model`) value, languages, licence, the multilingual retrieval figure its card or paper
reports (XM3600 36-language text->image R@1, cited in `source`), and a `shape` whose parameter
count, embedding size and CPU embedding rate `benchmarks/backbone_rate.py --write` measured on
random weights of the real shape. Languages are a list, or a named set: `xm3600` (the 36
languages those figures average over), `flores-200` (every language with an NLLB code,
`mumur.translate.codes`), `broad` (about 100 languages, no per-language figure), or
`synthetic-world`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..config import load_packaged_config
from ..errors import ConfigError
from ..translate.codes import normalize_language, supported_languages

__all__ = ["Backbone", "default_index_model", "language_recommendation", "list_backbones",
           "load_catalogue"]


@dataclass(frozen=True)
class Backbone:
    """One catalogue entry (see the module docstring for the fields)."""

    name: str
    model: str
    family: str
    languages: tuple[str, ...] | str
    licence: str
    text_model: str | None = None
    xm3600_t2i_r1: float | None = None
    source: str | None = None
    note: str | None = None
    language_note: str | None = None
    shape: str | None = None
    cpu: dict = field(default_factory=dict)

    @property
    def commercial_use(self) -> bool:
        """False for non-commercial licences (CC-BY-NC)."""
        return "-NC" not in self.licence.upper()

    def covers(self, language: str, xm3600: tuple[str, ...]) -> str | None:
        """"yes" when the model names the language, "maybe" for `broad` models, else None."""
        if self.languages == "broad":
            return "maybe"
        if self.languages == "flores-200":
            return "yes" if language in supported_languages("nllb") else None
        names = xm3600 if self.languages == "xm3600" else self.languages
        return "yes" if isinstance(names, tuple) and language in names else None


def load_catalogue() -> dict:
    """The parsed catalogue JSON."""
    return load_packaged_config("catalogue", "backbones")


def list_backbones() -> list[Backbone]:
    """Every catalogue entry, with its measured CPU figures (empty until the benchmark ran)."""
    data = load_catalogue()
    out = []
    for entry in data["models"]:
        entry = dict(entry)
        languages = entry.pop("languages")
        out.append(Backbone(**entry, languages=tuple(languages) if isinstance(languages, list)
                            else languages, cpu=data.get("cpu", {}).get(entry.get("shape"), {})))
    return out


def language_recommendation(language: str) -> dict:
    """Which backbones serve `language`, best reported figure first.

    Args:
        language: an ISO 639-1 tag (region/script variants accepted).

    Returns:
        `{"language", "best_reported": name | None, "best_commercial": name | None,
        "fastest_on_cpu": name | None, "candidates": [{"name", "covers", "xm3600_t2i_r1",
        "images_per_s", "licence"}, ...]}`. The figures are 36-language averages, not this
        language's: a `maybe` model (about 100 languages) may be weak in a low-resource one.
    """
    data = load_catalogue()
    xm3600 = tuple(data["xm3600_languages"])
    tag = normalize_language(language)
    rows = []
    for b in list_backbones():
        covers = b.covers(tag, xm3600)
        if covers is None:
            continue
        rows.append({"name": b.name, "covers": covers, "xm3600_t2i_r1": b.xm3600_t2i_r1,
                     "images_per_s": b.cpu.get("images_per_s"), "licence": b.licence,
                     "commercial_use": b.commercial_use})
    rows.sort(key=lambda r: (r["covers"] != "yes", -(r["xm3600_t2i_r1"] or -1)))
    rated = [r for r in rows if r["xm3600_t2i_r1"] is not None and r["covers"] == "yes"]
    timed = [r for r in rows if r["images_per_s"] and r["name"] != "world-stack"]
    return {
        "language": tag,
        "best_reported": rated[0]["name"] if rated else None,
        "best_commercial": next((r["name"] for r in rated if r["commercial_use"]), None),
        "fastest_on_cpu": max(timed, key=lambda r: r["images_per_s"])["name"] if timed else None,
        "candidates": rows,
    }


def _hub_reachable() -> bool:
    """Whether the model hub may be used: not switched off (`HF_HUB_OFFLINE`, `MUMUR_OFFLINE`)
    and its host resolves and accepts a connection within 2 s."""
    import socket

    if any(os.environ.get(v, "").lower() in ("1", "true", "yes")
           for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "MUMUR_OFFLINE")):
        return False
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("//")[-1].split("/")[0]
    try:
        with socket.create_connection((host, 443), timeout=2):
            return True
    except OSError:
        return False


def default_index_model(hub: bool | None = None) -> tuple[Backbone, str]:
    """The model a new index gets when none is given.

    Args:
        hub: whether the model hub is reachable (None: probe it, `_hub_reachable`).

    Returns:
        `(backbone, note)`: with the hub, the catalogue's CPU default (SigLIP 2 B/16-256, why in
        the catalogue's `default.why` and docs/search-product.md); offline, the shipped world
        stack, with a one-line note that it only knows the synthetic world.
    """
    data = load_catalogue()
    hub = _hub_reachable() if hub is None else hub
    wanted = data["default"]["hub" if hub else "offline"]
    backbones = {b.name: b for b in list_backbones()}
    if wanted not in backbones:
        raise ConfigError(f"catalogue default {wanted!r} is not a catalogue entry")
    chosen = backbones[wanted]
    if hub:
        note = (f"no --model given: using {chosen.model} ({chosen.family}, {chosen.licence}), "
                "the catalogue's multilingual default for CPUs (`mumur models`)")
    else:
        note = (f"no --model given and no model hub: using the shipped {chosen.model} + "
                f"{chosen.text_model}, which only knows the synthetic world (shapes, colours, "
                "motions), not real photos; pass --model for a real collection")
    return chosen, note
