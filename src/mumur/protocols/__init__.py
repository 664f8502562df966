"""The papers' evaluation protocols as named presets, and the feature-extraction job that the
reproduction recipes (`docs/gpu-recipe.md`) run before training."""

from .presets import (
    PRESETS,
    Preset,
    eval_config,
    experiment_config,
    get_preset,
    list_presets,
    write_preset_configs,
)

__all__ = [
    "PRESETS",
    "Preset",
    "eval_config",
    "experiment_config",
    "get_preset",
    "list_presets",
    "write_preset_configs",
]
