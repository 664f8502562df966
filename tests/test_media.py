"""mumur.media: seek-based frame sampling, images, audio, typed errors, CLIP preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mumur.errors import MediaDecodeError
from mumur.media import video
from mumur.media.decode import (
    media_type_of,
    probe,
    read_audio,
    read_frames,
    read_image,
    sample_frame_times,
)
from mumur.media.transforms import CLIP_MEAN, CLIP_STD, ClipPreprocess


def _expected_indices(duration, fps, times):
    # First frame at or after each target time (frame k shows at k / fps); the last frame for
    # targets after it.
    last = round(duration * fps) - 1
    return [min(int(np.ceil(t * fps - 1e-6)), last) for t in times]


def test_sample_frame_times_uniform_and_random():
    assert sample_frame_times(12.0, 4) == [1.5, 4.5, 7.5, 10.5]
    times = sample_frame_times(12.0, 4, "random", rng=np.random.default_rng(3))
    for i, t in enumerate(times):
        assert 3 * i <= t < 3 * (i + 1)  # one draw per equal segment
    again = sample_frame_times(12.0, 4, "random", rng=np.random.default_rng(3))
    assert times == again
    assert sample_frame_times(12.0, 4, "random", rng=np.random.default_rng(4)) != times
    with pytest.raises(ValueError):
        sample_frame_times(1.0, 2, "middle")


def test_media_type_of():
    assert media_type_of("a/b.MP4") == "video"
    assert media_type_of("x.webm") == "video"
    assert media_type_of("x.JPEG") == "image"
    assert media_type_of("x.gif") == "image"
    assert media_type_of("x.txt") is None


@pytest.mark.parametrize("name", ["short.mp4", "clip.mkv", "clip.webm", "clip.mov",
                                  "clip.avi"])
def test_read_frames_uniform_picks_right_frames(media_files, frame_index, name):
    info = probe(media_files[name])
    assert info.media_type == "video" and info.fps == pytest.approx(10.0)
    fr = read_frames(media_files[name], 6)
    assert len(fr.frames) == 6 and all(im.mode == "RGB" for im in fr.frames)
    assert fr.frames[0].size == (64, 48)
    targets = sample_frame_times(info.duration, 6)
    want = _expected_indices(info.duration, 10, targets)
    assert [frame_index(im) for im in fr.frames] == want
    assert fr.timestamps == pytest.approx([k / 10 for k in want])


def test_read_frames_random_is_reproducible(media_files, frame_index):
    a = read_frames(media_files["short.mp4"], 5, "random", rng=np.random.default_rng(7))
    b = read_frames(media_files["short.mp4"], 5, "random", rng=np.random.default_rng(7))
    times = sample_frame_times(4.0, 5, "random", rng=np.random.default_rng(7))
    want = _expected_indices(4.0, 10, times)
    assert [frame_index(im) for im in a.frames] == want
    assert a.timestamps == b.timestamps


def test_long_video_is_sampled_by_seeking(media_files, frame_index):
    info = probe(media_files["long.mp4"])
    assert info.n_frames == 300
    fr = read_frames(media_files["long.mp4"], 12)
    want = _expected_indices(info.duration, 10, sample_frame_times(info.duration, 12))
    # Colour codes repeat every 256 frames.
    assert [frame_index(im) for im in fr.frames] == [k % 256 for k in want]
    # One keyframe per 10 frames: each target costs at most ~10 decoded frames, never the whole
    # 300-frame video.
    assert fr.n_decoded <= 12 * 11
    assert fr.n_decoded < info.n_frames / 2


def test_seek_failure_falls_back_to_sequential_prefix(media_files, frame_index, monkeypatch):
    import av

    def broken_seek(self, seek_to):
        if seek_to is not None:
            raise av.error.FFmpegError(22, "seek not supported")  # EINVAL
        self._iter = self.container.decode(self.stream)

    monkeypatch.setattr(video._Reader, "restart", broken_seek)
    fr = read_frames(media_files["long.mp4"], 4)
    want = _expected_indices(30.0, 10, sample_frame_times(30.0, 4))
    assert [frame_index(im) for im in fr.frames] == [k % 256 for k in want]
    # Sequential decoding stops at the last target (frame 263), not at the end (300).
    assert fr.n_decoded == want[-1] + 1


def test_fewer_frames_than_requested_repeats_nearest(media_files, frame_index):
    fr = read_frames(media_files["audio.mp4"], 30)  # 20 frames in the file
    idx = [frame_index(im) for im in fr.frames]
    want = _expected_indices(2.0, 10, sample_frame_times(2.0, 30))
    assert idx == want and len(idx) == 30 and len(set(idx)) < 30  # neighbours repeat
    assert fr.timestamps == pytest.approx([k / 10 for k in want])


@pytest.mark.parametrize("name", ["image.jpg", "image.png", "image.webp", "image.bmp",
                                  "image.gif"])
def test_images_give_one_rgb_frame(media_files, name):
    fr = read_frames(media_files[name], 12)
    assert len(fr.frames) == 1 and fr.timestamps == [0.0] and fr.frames[0].mode == "RGB"
    info = probe(media_files[name])
    assert info.media_type == "image" and (info.width, info.height) == fr.frames[0].size


def test_gif_first_frame_png_alpha_and_exif(media_files, frame_index):
    assert frame_index(read_image(media_files["image.gif"])) == 3
    # RGBA at alpha 128 is composited on white: value = (c + 255) / 2 (+- rounding).
    png = np.asarray(read_image(media_files["image.png"]), dtype=float)
    src = np.asarray(Image.open(media_files["image.png"]).convert("RGBA"), dtype=float)[..., :3]
    assert np.abs(png - (src * 128 + 255 * 127) / 255).max() <= 1.0
    assert read_image(media_files["rotated.jpg"]).size == (60, 80)  # EXIF 6: 80x60 -> 60x80


def test_decompression_bomb_guard(media_files):
    with pytest.raises(MediaDecodeError, match="too large"):
        read_frames(media_files["image.jpg"], 1, max_pixels=1000)
    assert read_frames(media_files["image.jpg"], 1, max_pixels=None).frames[0].size == (80, 60)


@pytest.mark.parametrize("name", ["empty.mp4", "truncated.mp4", "text.mp4", "notes.xyz"])
def test_bad_files_raise_media_decode_error(media_files, name):
    path = media_files[name]
    with pytest.raises(MediaDecodeError) as err:
        read_frames(path, 4)
    assert str(path) in str(err.value) and err.value.path == str(path) and err.value.reason
    with pytest.raises(MediaDecodeError):
        read_audio(path)
    with pytest.raises(MediaDecodeError):
        probe(path)


def test_missing_and_corrupt_image(tmp_path):
    with pytest.raises(MediaDecodeError, match="not found"):
        read_frames(tmp_path / "nope.mp4", 2)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"\x00" * 40)
    with pytest.raises(MediaDecodeError, match="bad.jpg"):
        read_frames(bad, 1)


def test_read_audio_resamples_to_mono_16k(media_files):
    audio = read_audio(media_files["audio.mp4"])
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - 32000) < 1600  # 2 s at 16 kHz (+ AAC priming/padding)
    mid = audio[4000:20000]
    assert np.sqrt((mid ** 2).mean()) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)
    spectrum = np.abs(np.fft.rfft(mid))
    assert np.argmax(spectrum) * 16000 / mid.size == pytest.approx(440, abs=2)
    assert read_audio(media_files["audio.mp4"], max_seconds=0.5).size == 8000
    assert read_audio(media_files["short.mp4"]).size == 0  # no audio track
    assert read_audio(media_files["image.jpg"]).size == 0


def test_clip_preprocess_matches_transformers():
    transformers = pytest.importorskip("transformers")
    try:
        ref_proc = transformers.CLIPImageProcessorPil()
    except AttributeError:
        ref_proc = transformers.CLIPImageProcessor()
    rng = np.random.default_rng(0)
    images = [Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8))
              for h, w in [(300, 400), (224, 224), (100, 80), (999, 333)]]
    images.append(Image.new("RGB", (50, 500), (200, 10, 30)))
    ours = ClipPreprocess(224)(images)
    assert ours.shape == (5, 3, 224, 224) and ours.dtype.is_floating_point
    ref = ref_proc(images=images, return_tensors="np")["pixel_values"]
    assert np.abs(ours.numpy() - ref).max() < 1e-5


def test_clip_preprocess_numpy_fast_path_and_normalisation():
    arr = np.full((40, 90, 3), (255, 0, 128), dtype=np.uint8)
    pre = ClipPreprocess(32)
    a = pre([arr])
    b = pre([Image.fromarray(arr)])
    assert a.shape == (1, 3, 32, 32) and np.array_equal(a.numpy(), b.numpy())
    want = (np.array([255, 0, 128]) / 255 - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    assert np.allclose(a[0, :, 16, 16].numpy(), want, atol=1e-5)
    with pytest.raises(ValueError):
        pre([np.zeros((4, 4), dtype=np.uint8)])


def test_unknown_duration_is_measured_from_packets(media_files, frame_index, monkeypatch):
    real = video._stream_timing

    def no_duration(container, stream):
        start, _, fps, _ = real(container, stream)
        return start, None, fps, None

    monkeypatch.setattr(video, "_stream_timing", no_duration)
    fr = read_frames(media_files["long.mp4"], 6)
    want = _expected_indices(30.0, 10, sample_frame_times(30.0, 6))
    assert [frame_index(im) for im in fr.frames] == [k % 256 for k in want]
    assert fr.n_decoded < 100


def test_threaded_decode_and_resize_in_decoder(media_files, frame_index):
    fr = read_frames(media_files["long.mp4"], 8, thread_type="AUTO")
    want = _expected_indices(30.0, 10, sample_frame_times(30.0, 8))
    assert [frame_index(im) for im in fr.frames] == [k % 256 for k in want]
    small = read_frames(media_files["short.mp4"], 3, resize_shorter=24)
    assert small.frames[0].size == (32, 24)
    full = read_frames(media_files["short.mp4"], 3)
    assert [frame_index(im) for im in small.frames] == [frame_index(im) for im in full.frames]
