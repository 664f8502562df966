"""Render evaluation results as markdown tables (per language) and JSON."""

from __future__ import annotations

__all__ = ["markdown_table"]

_COLUMNS = ("R1", "R5", "R10", "MdR", "MnR")


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def markdown_table(result: dict, title: str | None = None) -> str:
    """One row per language: t2v R@1/5/10, MdR, MnR | v2t R@1/5/10, MdR, MnR | SumR.

    Args:
        result: the dict returned by `mumur.eval.runner.evaluate` (``{"languages": {...}}``).
        title: optional heading line.
    """
    head = ["lang", "branch"] + [f"t2v {c}" for c in _COLUMNS] + [f"v2t {c}" for c in _COLUMNS]
    head.append("SumR")
    lines = [] if title is None else [f"### {title}", ""]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join("---" for _ in head) + "|")
    for lang, m in result["languages"].items():
        row = [lang, m.get("branch", "")]
        row += [_fmt(m["t2v"][c]) for c in _COLUMNS] + [_fmt(m["v2t"][c]) for c in _COLUMNS]
        row.append(_fmt(m.get("SumR", sum(m[d][k] for d in ("t2v", "v2t")
                                         for k in ("R1", "R5", "R10")))))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
