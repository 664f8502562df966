"""The docs name only what exists: every backticked dotted `mumur.` name in docs/INTERFACES.md
imports, and every `mumur ...` command line in the README, docs/gpu-recipe.md and
docs/scale-out.md uses commands and options the CLI has."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "INTERFACES.md"


def _resolve(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):  # the longest importable module prefix
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_every_name_in_interfaces_md_exists():
    names = sorted(set(re.findall(r"`(mumur(?:\.[A-Za-z_]\w*)+)", DOC.read_text())))
    assert len(names) > 100  # the page names things fully qualified
    missing = []
    for name in names:
        try:
            _resolve(name)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{name} ({type(exc).__name__}: {exc})")
    assert not missing, "docs/INTERFACES.md names what does not exist:\n" + "\n".join(missing)


def test_a_wrong_name_is_caught():
    import pytest

    for name in ("mumur.eval.metrics.chunked_similarity", "mumur.protocols.presets"):
        with pytest.raises((ImportError, AttributeError)):
            _resolve(name)


def _doc_commands(path: Path) -> list[list[str]]:
    """The `mumur ...` command lines of a markdown file's bash blocks (continuations joined,
    comments dropped, shell variables left as words)."""
    import shlex

    commands = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.DOTALL):
        text = re.sub(r"\\\n\s*", " ", block)
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            for part in re.split(r";|&&|\bdo\b|&", line):
                words = shlex.split(part)
                if words[:1] == ["mumur"]:
                    commands.append(words[1:])
    return commands


def test_documented_commands_and_options_exist():
    import typer

    from mumur.cli import app

    root = typer.main.get_command(app)
    checked = 0
    for path in (DOC.parents[1] / "README.md", DOC.parent / "gpu-recipe.md",
                 DOC.parent / "scale-out.md"):
        for words in _doc_commands(path):
            command, used = root, []
            for word in words:  # walk down groups (`mumur presets write`)
                if word in getattr(command, "commands", {}):
                    command = command.commands[word]
                    used.append(word)
                else:
                    break
            assert used and not hasattr(command, "commands"), f"{path.name}: mumur {words}"
            options = {o for param in command.params for o in param.opts + param.secondary_opts}
            for word in words:
                flag = word.split("=", 1)[0]
                if flag.startswith("--"):
                    assert flag in options, f"{path.name}: `mumur {' '.join(used)}` has no {flag}"
            checked += 1
    assert checked >= 20
