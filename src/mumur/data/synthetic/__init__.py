"""The offline synthetic world: deterministic scenes (shapes, colours, sizes, motions, places,
sounds), H.264+AAC videos and JPEG images, multilingual captions, and `manifest.json`.

`generate(out, SynthConfig(...))` writes a corpus; `mumur.data.load_benchmark("synthetic", out,
split=...)` reads it back.
"""

from __future__ import annotations

from .captions import LANGUAGES, caption_templates, describe, sample_captions
from .generate import MANIFEST_NAME, SynthConfig, SynthReport, build_manifest, generate, plan_corpus
from .render import RenderConfig
from .world import COLOURS, MOTIONS, PLACES, SHAPES, SIZES, SOUNDS, Scene, SceneObject, sample_scene

__all__ = [
    "COLOURS",
    "LANGUAGES",
    "MANIFEST_NAME",
    "MOTIONS",
    "PLACES",
    "SHAPES",
    "SIZES",
    "SOUNDS",
    "RenderConfig",
    "Scene",
    "SceneObject",
    "SynthConfig",
    "SynthReport",
    "build_manifest",
    "caption_templates",
    "describe",
    "generate",
    "plan_corpus",
    "sample_captions",
    "sample_scene",
]
