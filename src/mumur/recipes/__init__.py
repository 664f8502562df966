"""The application layer's recipes: ready-made experiments built from the library.

- `offline`: the offline default model and schedule (`configs/recipes/offline.json`) and the
  train / evaluate helpers `mumur demo` and `mumur ablation` share;
- `demo`: `mumur demo`, the offline end-to-end job;
- `ablation`: `mumur ablation`, the variants of `configs/ablations/offline.json`;
- `presets`: the papers' settings (`configs/presets/*.json`) -> `mumur train` / `mumur eval`
  configs (`mumur presets list|write`).

Nothing in the core library imports this package (`lint-imports`, pyproject.toml).
"""
