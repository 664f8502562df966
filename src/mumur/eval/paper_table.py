"""The papers' reported tables, and our results rendered in their layout beside their numbers.

Each table is one JSON file in `mumur/eval/paper_results/` transcribed from the paper text
(`shared/seeds/`): `id`, `paper`, `table`, `section`, `caption`, `source`, `dataset` (None when
columns span datasets), `columns` and `rows`. A column names how to read its value from an
evaluation result (`mumur.eval.runner.evaluate`):

- `direction`: `t2v` (text-to-video / text-to-image), `v2t` (video/image-to-text) or `both`;
- `metric`: `R1`, `R5`, `R10`, `MdR`, `MnR` (per direction), `SumR` (R@1+5+10 of both directions)
  or `mR` (mean recall over both directions, `SumR / 6`, the MLMM / M3P / UC2 convention);
- `language`: the caption language; `dataset` (optional): the benchmark the column is about;
- `aggregate: "mean"` with `languages`: the mean over those languages (e.g. MLMM Table 8 "Avg.").

Rows hold the paper's figures (`values`, aligned with `columns`; `null` where the paper prints a
dash or the seed text is garbled; the garbled string is kept in `unreadable`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ..errors import ConfigError

__all__ = [
    "PaperTable",
    "list_paper_tables",
    "load_paper_table",
    "our_values",
    "render_paper_table",
]

_PACKAGE = "mumur.eval"
_FOLDER = "paper_results"
_PER_DIRECTION = ("R1", "R5", "R10", "MdR", "MnR")
_BOTH = ("SumR", "mR")


@dataclass(frozen=True)
class PaperTable:
    """One table of a paper, as transcribed.

    Attributes:
        id: e.g. `mumur-table1`.
        paper, table, section, caption, source: where it comes from.
        dataset: benchmark name of the whole table (None when columns name theirs).
        columns: column specs (see module docstring).
        rows: `{"model", "values", "group"?, "info"?, "unreadable"?}`.
        paper_model: the row that is the paper's own method.
        info_columns: non-metric text columns shown before the metrics (e.g. backbone).
        notes: transcription and protocol notes.
    """

    id: str
    paper: str
    table: str
    section: str
    caption: str
    source: str
    dataset: str | None
    columns: list[dict]
    rows: list[dict]
    paper_model: str = ""
    split: str = "test"
    info_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def value(self, model: str, key: str, group: str | None = None) -> float | None:
        """The paper's figure for row `model` (first match, optionally in `group`) and column key.

        Raises:
            KeyError: no such row or column.
        """
        col = [c["key"] for c in self.columns].index(key)
        for row in self.rows:
            if row["model"] == model and (group is None or row.get("group") == group):
                return row["values"][col]
        raise KeyError(f"{self.id}: no row {model!r}" + (f" in group {group!r}" if group else ""))


def _table_files() -> dict[str, Any]:
    folder = resources.files(_PACKAGE).joinpath(_FOLDER)
    return {p.name[:-5].replace("_", "-"): p for p in folder.iterdir() if p.name.endswith(".json")}


def list_paper_tables() -> list[str]:
    """Ids of the transcribed tables, e.g. `['leccr-table1', ..., 'mumur-table8']`."""
    return sorted(_table_files())


def load_paper_table(table_id: str) -> PaperTable:
    """Load a transcribed table by id.

    Args:
        table_id: e.g. `mumur-table1` (see `list_paper_tables()`).

    Returns:
        the `PaperTable`.

    Raises:
        ConfigError: unknown id or a malformed file.
    """
    files = _table_files()
    if table_id not in files:
        raise ConfigError(f"unknown paper table {table_id!r}; known: {', '.join(sorted(files))}")
    data = json.loads(files[table_id].read_text(encoding="utf-8"))
    try:
        table = PaperTable(**data)
    except TypeError as exc:
        raise ConfigError(f"paper table {table_id}: malformed file ({exc})") from None
    for row in table.rows:
        if len(row["values"]) != len(table.columns):
            raise ConfigError(f"paper table {table_id}: row {row['model']!r} has "
                              f"{len(row['values'])} values for {len(table.columns)} columns")
    return table


def _metric(result: dict, language: str, direction: str, metric: str) -> float | None:
    lang = result.get("languages", {}).get(language)
    if lang is None:
        return None
    if metric in _BOTH:
        total = lang.get("SumR")
        if total is None:  # older results without SumR: R@1+5+10 of both directions
            total = sum(lang[d][k] for d in ("t2v", "v2t") for k in ("R1", "R5", "R10"))
        return total / 6.0 if metric == "mR" else total
    if metric not in _PER_DIRECTION or direction not in ("t2v", "v2t"):
        raise ConfigError(f"unknown column metric {direction}.{metric}")
    value = lang.get(direction, {}).get(metric)
    return None if value is None else float(value)


def our_values(table: PaperTable, result: dict) -> list[float | None]:
    """Our figures for each column of `table` from one evaluation result.

    A column whose dataset differs from the result's dataset, or whose language the result lacks,
    gets None (shown as a blank).

    Args:
        table: the paper table.
        result: `{"languages": {lang: {"t2v": {...}, "v2t": {...}, "SumR": ...}}, "dataset":
            {"name": ...}}` as written by `mumur eval`.

    Returns:
        one value (or None) per column.
    """
    name = (result.get("dataset") or {}).get("name")
    values: list[float | None] = []
    for col in table.columns:
        dataset = col.get("dataset", table.dataset)
        if dataset is not None and name is not None and name != dataset:
            values.append(None)
            continue
        if col.get("aggregate") == "mean":
            parts = [_metric(result, lang, col["direction"], col["metric"])
                     for lang in col["languages"]]
            values.append(None if any(p is None for p in parts) else sum(parts) / len(parts))
        else:
            values.append(_metric(result, col["language"], col["direction"], col["metric"]))
    return values


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text if "." in text else f"{text}.0"


def render_paper_table(table: PaperTable, runs: list[tuple[str, dict]] | None = None,
                       fmt: str = "markdown") -> str:
    """The paper's table with our rows added: `mumur (ours, <run>)`, columns as in the paper.

    Args:
        table: from `load_paper_table`.
        runs: `(run name, evaluation result)` pairs; each becomes one row after the paper's rows.
        fmt: `markdown` (pipe table with a title and notes) or `tsv`.

    Returns:
        the rendered table.

    Raises:
        ConfigError: unknown format.
    """
    if fmt not in ("markdown", "tsv"):
        raise ConfigError(f"unknown table format {fmt!r}; use markdown or tsv")
    grouped = any("group" in r for r in table.rows)
    head = (["Setting"] if grouped else []) + ["Model"] + list(table.info_columns)
    head += [c["label"] for c in table.columns]
    body = []
    for row in table.rows:
        cells = ([row.get("group", "")] if grouped else []) + [row["model"]]
        cells += [str(row.get("info", {}).get(k, "")) for k in table.info_columns]
        cells += [_fmt(v) for v in row["values"]]
        body.append(cells)
    for name, result in runs or []:
        cells = (["Ours"] if grouped else []) + [f"mumur (ours, {name})"]
        cells += ["" for _ in table.info_columns]
        cells += [_fmt(v) for v in our_values(table, result)]
        body.append(cells)
    if fmt == "tsv":
        return "\n".join("\t".join(r) for r in [head] + body)
    lines = [(f"### {table.paper.split(',')[0]} — {table.table} (§{table.section}): "
             f"{table.caption}"), ""]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join("---" for _ in head) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in body]
    if table.notes:
        lines.append("")
        lines += [f"- {n}" for n in table.notes]
    lines.append(f"- Paper figures transcribed from `{table.source}`; '–' = not reported.")
    return "\n".join(lines)
