"""Dataclass configs <-> JSON: one place that turns frozen dataclasses into plain dicts and back.

Configs are frozen dataclasses (open_clip / transformers style); overrides are merged with
`dataclasses.replace`, and unknown keys are a `ConfigError` naming the valid ones.

Configurations that ship with the package (model definitions, recipes, paper presets) are JSON
files under `mumur/configs/<kind>/<name>.json` (open_clip's `model_configs/` layout), listed by
`list_packaged_configs(kind)` and read by `load_packaged_config(kind, name)`. Variations of a
config are JSON Merge Patches (RFC 7396, `merge_patch`): objects merge key by key, `null` deletes
a key, anything else replaces.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import typing
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError
from .fsutil import atomic_write_json

__all__ = [
    "config_from_dict",
    "config_to_dict",
    "list_packaged_configs",
    "load_packaged_config",
    "merge_patch",
    "read_json",
    "replace_config",
    "write_json",
]

C = TypeVar("C")


def _field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def config_to_dict(config) -> dict[str, Any]:
    """A JSON-ready dict of a dataclass config (tuples become lists).

    Args:
        config: a dataclass instance.

    Returns:
        a dict of plain JSON values.
    """
    def plain(value):
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return config_to_dict(value)
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _check_keys(cls, keys, context: str) -> None:
    valid = _field_names(cls)
    unknown = sorted(set(keys) - set(valid))
    if unknown:
        raise ConfigError(f"{context}: unknown option(s) {', '.join(map(repr, unknown))}; "
                          f"valid options: {', '.join(valid)}")


def _coerce(cls, values: dict[str, Any]) -> dict[str, Any]:
    # JSON has no tuples: turn lists back into tuples where the field is declared as a tuple.
    hints = typing.get_type_hints(cls)
    out = dict(values)
    for name, value in values.items():
        origin = typing.get_origin(hints.get(name))
        if isinstance(value, list) and (origin is tuple or "tuple" in str(hints.get(name))):
            out[name] = tuple(value)
    return out


def config_from_dict(cls: type[C], data: dict[str, Any], context: str = "config") -> C:
    """Build dataclass `cls` from a dict, rejecting unknown keys.

    Args:
        cls: the dataclass type.
        data: field values (missing fields take their defaults).
        context: what the dict is, for error messages.

    Returns:
        an instance of `cls`.

    Raises:
        ConfigError: unknown keys or invalid values.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{context}: expected a JSON object, got {type(data).__name__}")
    _check_keys(cls, data.keys(), context)
    try:
        return cls(**_coerce(cls, data))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{context}: {exc}") from None


def replace_config(config: C, context: str = "config", **overrides) -> C:
    """`dataclasses.replace` with a clear error for unknown option names.

    Args:
        config: a frozen dataclass instance.
        context: what the config is, for error messages.
        **overrides: fields to change.

    Returns:
        a new config.

    Raises:
        ConfigError: unknown option names or invalid values.
    """
    _check_keys(type(config), overrides.keys(), context)
    try:
        return dataclasses.replace(config, **_coerce(type(config), overrides))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{context}: {exc}") from None


def read_json(path: str | Path, error: type[Exception] = ConfigError) -> Any:
    """Read a JSON file, turning a missing or malformed file into `error(path: reason)`."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}: invalid JSON ({exc})") from None


def write_json(path: str | Path, data: Any) -> None:
    """Write `data` atomically as indented UTF-8 JSON with sorted keys (stable bytes for
    hashing)."""
    atomic_write_json(path, data, indent=2, sort_keys=True)


def _packaged(kind: str):
    folder = resources.files("mumur").joinpath("configs").joinpath(kind)
    if not folder.is_dir():
        raise ConfigError(f"no packaged configs of kind {kind!r}")
    return {p.name[:-5]: p for p in folder.iterdir() if p.name.endswith(".json")}


def list_packaged_configs(kind: str) -> list[str]:
    """Names of the JSON configs shipped in `mumur/configs/<kind>/` (e.g. `models`, `presets`).

    Raises:
        ConfigError: no such kind.
    """
    return sorted(_packaged(kind))


def load_packaged_config(kind: str, name: str) -> Any:
    """The parsed JSON of `mumur/configs/<kind>/<name>.json`.

    Raises:
        ConfigError: unknown kind or name (the known names listed), or malformed JSON.
    """
    files = _packaged(kind)
    if name not in files:
        raise ConfigError(f"unknown {kind} config {name!r}; known: {', '.join(sorted(files))}")
    try:
        return json.loads(files[name].read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"configs/{kind}/{name}.json: invalid JSON ({exc})") from None


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON Merge Patch (RFC 7396) to a copy of `target`.

    Objects merge key by key (recursively), a `null` value deletes the key, any other value
    (lists included) replaces it. Neither argument is modified.

    Returns:
        the patched copy.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out
