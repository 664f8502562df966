"""Rendering of synthetic scenes: textured backgrounds, objects, motion, sound, and encoding.

Frames are drawn with PIL at `supersample`x the output size and box-filtered down (antialiasing).
Videos are H.264 (libx264, yuv420p, one encoder thread, bit-exact flags) in an .mp4 with an AAC
mono audio track (silent when no object makes a sound); images are baseline JPEGs. Everything
random comes from the item's render stream, so an item renders identically in any process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .world import TRAVEL, Scene, SceneObject

__all__ = [
    "COLOUR_RGB",
    "OBJECT_RADIUS",
    "RenderConfig",
    "object_state",
    "render_audio",
    "render_background",
    "render_frames",
    "render_image",
    "write_image",
    "write_video",
]

COLOUR_RGB = {
    "red": (220, 30, 35), "green": (40, 175, 60), "blue": (35, 75, 225),
    "yellow": (250, 220, 35), "purple": (145, 55, 190), "orange": (250, 140, 25),
    "white": (250, 250, 250), "black": (12, 12, 12),
}
# Object radius as a fraction of the frame side.
OBJECT_RADIUS = {"small": 0.09, "large": 0.18}
_ROTATION_DEGREES = 270.0  # total turn of a rotating object over the clip
_SCALE_RANGE = (0.75, 1.25)  # grows: 0.75 -> 1.25 of its size; shrinks: the reverse


@dataclass(frozen=True)
class RenderConfig:
    """Output format of the synthetic media.

    Args:
        size: frame side in pixels (square frames).
        fps: video frame rate.
        num_frames: frames per video (duration = num_frames / fps seconds).
        sample_rate: audio sample rate (Hz).
        supersample: drawing resolution factor used for antialiasing.
        crf: x264 constant rate factor.
        preset: x264 preset (speed/size trade-off; the output is deterministic for any).
        jpeg_quality: JPEG quality for images.
    """

    size: int = 128
    fps: int = 8
    num_frames: int = 24
    sample_rate: int = 16000
    supersample: int = 2
    crf: int = 23
    preset: str = "superfast"
    jpeg_quality: int = 90

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


# ---------------------------------------------------------------- backgrounds


def _vertical_gradient(side: int, top: tuple, bottom: tuple) -> np.ndarray:
    t = np.linspace(0.0, 1.0, side, dtype=np.float32)[:, None, None]  # (H, 1, 1)
    img = (1 - t) * np.asarray(top, np.float32) + t * np.asarray(bottom, np.float32)  # (H, 1, 3)
    return np.repeat(img, side, axis=1)  # (H, W, 3)


def _noise(rng: np.random.Generator, side: int, amount: float) -> np.ndarray:
    return rng.normal(0.0, amount, size=(side, side, 1)).astype(np.float32)  # (H, W, 1)


def render_background(place: str, rng: np.random.Generator, side: int) -> Image.Image:
    """A recognisable textured background for `place`.

    beach: sea band with wave crests over sand with speckles; grass: green with blades;
    snow: pale ground with flakes; night: dark sky with stars and a moon.

    Args:
        place: one of `PLACES`.
        rng: the item's render stream.
        side: side in pixels.

    Returns:
        An RGB image of `side` x `side`.
    """
    if place == "beach":
        arr = _vertical_gradient(side, (235, 210, 160), (215, 185, 130)) + _noise(rng, side, 7)
        horizon = int(side * rng.uniform(0.28, 0.38))
        arr[:horizon] = _vertical_gradient(side, (40, 110, 190), (70, 160, 210))[:horizon]
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(10):  # wave crests on the sea
            y = rng.uniform(0.05, 0.9) * horizon
            x = rng.uniform(0, side)
            w = rng.uniform(0.08, 0.2) * side
            draw.line([(x, y), (x + w, y)], fill=(200, 230, 245), width=max(1, side // 128))
        draw.line([(0, horizon), (side, horizon)], fill=(250, 250, 245), width=max(2, side // 64))
        for _ in range(side // 2):  # shells and pebbles in the sand
            x, y = rng.uniform(0, side), rng.uniform(horizon + 3, side)
            r = rng.uniform(0.5, 1.5) * side / 128
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(170, 140, 95))
        return img
    if place == "grass":
        arr = _vertical_gradient(side, (95, 165, 70), (60, 130, 45)) + _noise(rng, side, 8)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(side * 3):  # blades: short slanted strokes
            x, y = rng.uniform(0, side), rng.uniform(0, side)
            h = rng.uniform(0.02, 0.05) * side
            lean = rng.uniform(-0.4, 0.4) * h
            shade = int(rng.integers(-35, 35))
            draw.line([(x, y), (x + lean, y - h)], fill=(70 + shade, 150 + shade, 50 + shade),
                      width=max(1, side // 128))
        return img
    if place == "snow":
        arr = _vertical_gradient(side, (205, 220, 240), (235, 240, 248)) + _noise(rng, side, 4)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(side // 2):  # flakes
            x, y = rng.uniform(0, side), rng.uniform(0, side)
            r = rng.uniform(0.6, 1.8) * side / 128
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255),
                         outline=(185, 200, 225))
        return img
    if place == "night":
        arr = _vertical_gradient(side, (5, 8, 30), (20, 25, 60)) + _noise(rng, side, 2)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(side // 3):  # stars: tiny bright dots
            x, y = rng.uniform(0, side), rng.uniform(0, side)
            r = rng.uniform(0.3, 0.9) * side / 128
            b = int(rng.integers(170, 256))
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(b, b, int(b * 0.9)))
        mx, my, mr = rng.uniform(0.1, 0.9) * side, rng.uniform(0.08, 0.2) * side, 0.07 * side
        draw.ellipse([mx - mr, my - mr, mx + mr, my + mr], fill=(235, 235, 200))
        draw.ellipse([mx - mr * 0.4, my - mr * 1.05, mx + mr * 1.6, my + mr * 0.95],
                     fill=(10, 14, 40))  # crescent moon
        return img
    raise ValueError(f"unknown place {place!r}")


# ---------------------------------------------------------------- objects


def _unit_outline(shape: str) -> np.ndarray:
    """Outline points of a shape of radius 1 centred at the origin, pointing up. (P, 2)"""
    if shape == "circle":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return np.stack([np.cos(t), np.sin(t)], 1)
    if shape == "square":
        s = 1 / math.sqrt(2)
        return np.array([[-s, -s], [s, -s], [s, s], [-s, s]])
    if shape == "triangle":
        t = -np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        return np.stack([np.cos(t), np.sin(t)], 1)
    if shape == "star":
        t = -np.pi / 2 + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        return np.stack([r * np.cos(t), r * np.sin(t)], 1)
    if shape == "heart":
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        pts = np.stack([x, y + 2.5], 1)
        return pts / np.abs(pts).max()
    raise ValueError(f"unknown shape {shape!r}")


_OUTLINES = {}


def object_state(obj: SceneObject, t: float) -> tuple[float, float, float, float]:
    """Centre (x, y in [0, 1]), angle (degrees) and scale of `obj` at clip time `t` in [0, 1].

    Motion is linear over the clip, so direction shows only across several frames.
    """
    x, y, angle, scale = obj.x, obj.y, obj.angle, 1.0
    if obj.motion == "moves left":
        x -= TRAVEL * t
    elif obj.motion == "moves right":
        x += TRAVEL * t
    elif obj.motion == "moves up":
        y -= TRAVEL * t
    elif obj.motion == "moves down":
        y += TRAVEL * t
    elif obj.motion == "rotates":
        angle += _ROTATION_DEGREES * t
    elif obj.motion == "grows":
        scale = _SCALE_RANGE[0] + (_SCALE_RANGE[1] - _SCALE_RANGE[0]) * t
    elif obj.motion == "shrinks":
        scale = _SCALE_RANGE[1] - (_SCALE_RANGE[1] - _SCALE_RANGE[0]) * t
    return x, y, angle, scale


def _draw_object(draw: ImageDraw.ImageDraw, obj: SceneObject, t: float, side: int) -> None:
    x, y, angle, scale = object_state(obj, t)
    radius = OBJECT_RADIUS[obj.size] * scale * side
    theta = math.radians(angle)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    if obj.shape not in _OUTLINES:
        _OUTLINES[obj.shape] = _unit_outline(obj.shape)
    centre = np.array([x * side, y * side])
    pts = _OUTLINES[obj.shape] @ rot.T * radius + centre  # (P, 2)
    fill = COLOUR_RGB[obj.colour]
    edge = (200, 200, 200) if obj.colour == "black" else (0, 0, 0)
    draw.polygon([tuple(p) for p in pts], fill=fill, outline=edge, width=max(1, side // 90))
    # A marker that turns with the object: makes rotation visible for a circle too.
    mark = centre + rot @ np.array([0.0, -0.3]) * radius
    mr = 0.13 * radius
    mark_colour = tuple(int(c * 0.55) for c in fill) if obj.colour != "black" else (110, 110, 110)
    draw.ellipse([mark[0] - mr, mark[1] - mr, mark[0] + mr, mark[1] + mr], fill=mark_colour)


def _compose(background: Image.Image, scene: Scene, t: float, cfg: RenderConfig) -> Image.Image:
    img = background.copy()
    draw = ImageDraw.Draw(img)
    # The main object is drawn last, on top: it is the salient one the captions name.
    for obj in reversed(scene.objects):
        _draw_object(draw, obj, t, img.width)
    return img.resize((cfg.size, cfg.size), Image.Resampling.BOX)


def render_frames(scene: Scene, rng: np.random.Generator, cfg: RenderConfig,
                  num_frames: int | None = None) -> list[Image.Image]:
    """All frames of a video scene (or of one shot: its motions run over its own frames).

    Args:
        scene: a video scene.
        rng: the item's render stream (used for the background texture).
        cfg: output format.
        num_frames: frames to draw (default `cfg.num_frames`, the whole clip).

    Returns:
        `num_frames` RGB images of `cfg.size` x `cfg.size`.
    """
    num_frames = cfg.num_frames if num_frames is None else num_frames
    background = render_background(scene.place, rng, cfg.size * cfg.supersample)
    denom = max(1, num_frames - 1)
    return [_compose(background, scene, i / denom, cfg) for i in range(num_frames)]


def render_image(scene: Scene, rng: np.random.Generator, cfg: RenderConfig) -> Image.Image:
    """The single frame of an image scene (objects at their start layout)."""
    background = render_background(scene.place, rng, cfg.size * cfg.supersample)
    return _compose(background, scene, 0.0, cfg)


# ---------------------------------------------------------------- audio


def _envelope(n: int, ramp: int) -> np.ndarray:
    env = np.ones(n, np.float32)
    ramp = min(ramp, n // 2)
    if ramp > 0:
        env[:ramp] = np.linspace(0, 1, ramp, dtype=np.float32)
        env[-ramp:] = np.linspace(1, 0, ramp, dtype=np.float32)
    return env


def _sound(kind: str, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = np.arange(n, dtype=np.float64) / sr
    out = np.zeros(n, np.float32)
    if kind == "beeps":  # high tone pulses, 1-2 kHz
        freq = rng.uniform(1000, 2000)
        period, on = rng.uniform(0.3, 0.5), rng.uniform(0.1, 0.15)
        start = rng.uniform(0, period)
        tone = np.sin(2 * np.pi * freq * t).astype(np.float32)
        while start < n / sr:
            a, b = int(start * sr), min(n, int((start + on) * sr))
            out[a:b] = tone[a:b] * _envelope(b - a, int(0.005 * sr))
            start += period
        return out
    if kind == "hums":  # continuous low tone, 100-200 Hz, with two harmonics
        freq = rng.uniform(100, 200)
        wave = (np.sin(2 * np.pi * freq * t) + 0.5 * np.sin(4 * np.pi * freq * t)
                + 0.25 * np.sin(6 * np.pi * freq * t)) / 1.75
        wobble = 0.85 + 0.15 * np.sin(2 * np.pi * rng.uniform(1, 3) * t)
        return (wave * wobble).astype(np.float32) * _envelope(n, int(0.02 * sr))
    if kind == "clicks":  # short decaying noise ticks
        period = rng.uniform(0.2, 0.35)
        length = int(0.004 * sr)
        decay = np.exp(-np.arange(length) / (0.001 * sr)).astype(np.float32)
        start = rng.uniform(0, period)
        while start < n / sr:
            a = int(start * sr)
            b = min(n, a + length)
            out[a:b] = rng.uniform(-1, 1, b - a).astype(np.float32) * decay[: b - a]
            start += period
        return out
    raise ValueError(f"unknown sound {kind!r}")


def render_audio(scene: Scene, rng: np.random.Generator, cfg: RenderConfig,
                 num_samples: int | None = None) -> np.ndarray:
    """The mixed sound track of a video scene: one source per sounding object.

    Args:
        num_samples: track length (default: the whole clip, `cfg.duration` seconds).

    Returns:
        (num_samples,) float32 mono in [-1, 1]; all zeros when every object is silent.
    """
    n = round(cfg.duration * cfg.sample_rate) if num_samples is None else int(num_samples)
    mix = np.zeros(n, np.float32)
    for obj in scene.objects:
        if obj.sound is not None:
            mix += 0.3 * _sound(obj.sound, rng, n, cfg.sample_rate)
    return np.clip(mix, -1.0, 1.0)


# ---------------------------------------------------------------- encoding


def write_video(path: Path, frames: list[Image.Image], audio: np.ndarray,
                cfg: RenderConfig) -> None:
    """Encode frames (H.264) and audio (AAC, mono) into an .mp4, deterministically.

    Args:
        path: output file.
        frames: RGB images, all `cfg.size` square.
        audio: (num_samples,) float32 mono at `cfg.sample_rate`.
        cfg: output format.
    """
    import av

    with av.open(str(path), mode="w", format="mp4",
                 options={"fflags": "+bitexact", "movflags": "+faststart"}) as container:
        video = container.add_stream("libx264", rate=cfg.fps)
        video.width = video.height = cfg.size
        video.pix_fmt = "yuv420p"
        video.codec_context.thread_count = 1
        video.codec_context.options = {"crf": str(cfg.crf), "preset": cfg.preset,
                                       "flags": "+bitexact", "x264-params": "threads=1"}
        sound = container.add_stream("aac", rate=cfg.sample_rate, layout="mono")
        sound.codec_context.thread_count = 1
        sound.codec_context.options = {"flags": "+bitexact"}
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_image(img)
            frame.pts = i
            frame.time_base = Fraction(1, cfg.fps)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        chunk = 1024  # AAC frame size
        for start in range(0, len(audio), chunk):
            piece = np.ascontiguousarray(audio[None, start:start + chunk], np.float32)  # (1, n)
            frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout="mono")
            frame.sample_rate = cfg.sample_rate
            frame.pts = start
            frame.time_base = Fraction(1, cfg.sample_rate)
            for packet in sound.encode(frame):
                container.mux(packet)
        for packet in sound.encode():
            container.mux(packet)


def write_image(path: Path, image: Image.Image, cfg: RenderConfig) -> None:
    """Save a JPEG (baseline, no metadata)."""
    image.save(path, format="JPEG", quality=cfg.jpeg_quality, optimize=False)
