"""Sound in the index: audio rows written with the items, search adds the audio term and says when
a hit matched on sound, mismatches refused, and the borrowing rule of silent videos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import write_sound_video

from mumur.errors import IndexMismatchError
from mumur.model.audio import AudioTower, borrow_audio, fuse_scores

QUERY = "a grey square beeps"


def _tone(seconds: float = 1.0, freq: float = 1500.0) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ----------------------------------------------------------------------------- borrowing

def test_borrowing_takes_the_audio_of_the_visually_nearest_training_video():
    bank_vision = np.eye(3, 4, dtype=np.float32)  # training videos 0, 1, 2
    bank_audio = np.array([[0, 0, 0, 1], [0, 0, 1, 0], [1, 1, 0, 0]], np.float32)
    silent = np.array([[0.1, 0.9, 0.2, 0.0], [0.0, 0.1, 3.0, 0.0]], np.float32)
    audio, lender = borrow_audio(silent, bank_vision, bank_audio)
    assert lender.tolist() == [1, 2]
    assert np.allclose(audio[0], [0, 0, 1, 0])
    assert np.allclose(audio[1], np.array([1, 1, 0, 0]) / np.sqrt(2))  # unit norm


def test_missing_audio_policies_and_fused_scores(world_vision):
    from mumur.encoders.clip4vla import Clip4VLAAudioEncoder

    tower = AudioTower(Clip4VLAAudioEncoder.from_vision(world_vision, max_chunks=2), 4,
                       text_map=False)
    tower.set_bank(np.eye(2, 4, dtype=np.float32), np.array([[0, 0, 1, 0], [0, 0, 0, 1]],
                                                            np.float32))
    vision = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0]], np.float32)
    own = np.array([[0, 1, 1, 0], [1, 0, 0, 1], [0, 0, 1, 1]], np.float32)
    outcomes = ["ok", "silent", "no-audio"]
    borrowed, src = tower.video_audio(vision, own, outcomes, "borrow")
    assert src.tolist() == [0, 1, 1] and np.allclose(borrowed[1], [0, 0, 0, 1])
    none, src = tower.video_audio(vision, own, outcomes, "none")
    assert src.tolist() == [0, 2, 2] and not none[1:].any()
    _, src = tower.video_audio(vision, own, outcomes, "encode")
    assert src.tolist() == [0, 0, 1]  # silence is encoded; a file without a track still borrows
    text = np.array([[1, 0, 1, 0]], np.float32)
    total, sound = fuse_scores(text, text, vision, none)
    assert np.allclose(sound[0, 1:], 0.0)  # no audio term for the videos without sound
    assert np.allclose(total, (text / np.sqrt(2)) @ vision.T + sound)


# ---------------------------------------------------------------------------------- index

@pytest.fixture(scope="module")
def world_vision():
    import mumur

    return mumur.load_encoder("world-clip", modality="vision")


@pytest.fixture(scope="module")
def tower_dir(world_vision, tmp_path_factory):
    """A tower whose audio query for QUERY points at the tone clip's audio embedding, so the
    tone video must rise on sound (frames of all videos are identical)."""
    import mumur
    from mumur.encoders.clip4vla import Clip4VLAAudioEncoder

    tower = AudioTower(Clip4VLAAudioEncoder.from_vision(world_vision, max_chunks=2), 192)
    tone = tower.encoder.encode([_tone()])[0]  # (192,)
    query = mumur.load_encoder("world-clip", modality="text").encode([QUERY])[0]
    with torch.no_grad():
        tower.text_map.weight.copy_(torch.outer(tone, query))  # M x = tone (x . q)
    rng = np.random.default_rng(0)
    tower.set_bank(rng.normal(size=(3, 192)).astype(np.float32),
                   rng.normal(size=(3, 192)).astype(np.float32))
    return tower.save(tmp_path_factory.mktemp("tower") / "tower")


@pytest.fixture(scope="module")
def sound_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("sound")
    write_sound_video(root / "a_silent.mp4", np.zeros(16000, np.float32))
    write_sound_video(root / "b_mute.mp4", None)
    write_sound_video(root / "c_hum.mp4", _tone(freq=150.0))
    write_sound_video(root / "d_tone.mp4", _tone())
    return root


def test_audio_index_stores_sound_and_search_matches_on_it(sound_corpus, tower_dir,
                                                           tmp_path):
    from mumur.index import Index, build_index

    index = tmp_path / "index"
    report = build_index([sound_corpus], index, "world-clip", audio=tower_dir, num_workers=0,
                         progress=False)
    assert len(report.indexed) == 4 and not report.skipped
    idx = Index(index)
    rows = {idx.item(i).path.rsplit("/", 1)[1]: (o, s) for i, o, s in idx.store.query(
        "SELECT item_id, outcome, source FROM audio")}
    assert rows == {"a_silent.mp4": ("silent", 1), "b_mute.mp4": ("no-audio", 1),
                    "c_hum.mp4": ("ok", 0), "d_tone.mp4": ("ok", 0)}
    hits = idx.search(QUERY, k=4, language="en").results
    assert hits[0].path.endswith("d_tone.mp4") and hits[0].sound_match
    assert all(h.audio_score is not None for h in hits)
    assert idx.info()["audio"] == str(tower_dir.resolve())
    assert hits[0].audio_score == pytest.approx(max(h.audio_score for h in hits))
    visual = {h.path: h.score - h.audio_score for h in hits}
    assert max(visual.values()) - min(visual.values()) < 1e-4  # identical frames: sound decides
    idx.close()
    # a rerun with the recorded tower embeds nothing, and keeps using it
    again = build_index([sound_corpus], index, progress=False, num_workers=0)
    assert again.unchanged == 4 and not again.indexed


def test_audio_mismatches_are_refused(sound_corpus, tower_dir, tmp_path, world_vision):
    from mumur.encoders.clip4vla import Clip4VLAAudioEncoder
    from mumur.index import Index, build_index

    plain = tmp_path / "plain"
    build_index([sound_corpus], plain, "world-clip", num_workers=0, progress=False)
    with pytest.raises(IndexMismatchError, match="built without audio"):
        Index(plain, audio=tower_dir)
    with pytest.raises(IndexMismatchError, match="built without audio"):
        build_index([sound_corpus], plain, "world-clip", audio=tower_dir, num_workers=0,
                    progress=False)
    assert Index(plain).search(QUERY, k=1).results[0].audio_score is None  # visual only

    other = AudioTower(Clip4VLAAudioEncoder.from_vision(world_vision, max_chunks=2), 192)
    other.set_bank(np.ones((1, 192), np.float32), np.ones((1, 192), np.float32))
    other_dir = other.save(tmp_path / "other")
    aware = tmp_path / "aware"
    build_index([sound_corpus / "d_tone.mp4"], aware, "world-clip", audio=tower_dir,
                num_workers=0, progress=False)
    with pytest.raises(IndexMismatchError, match="audio tower"):
        Index(aware, audio=other_dir)
    with pytest.raises(IndexMismatchError, match="audio tower"):
        build_index([sound_corpus], aware, "world-clip", audio=other_dir, num_workers=0,
                    progress=False)


def test_search_cli_reports_sound_matches(sound_corpus, tower_dir, tmp_path):
    import json

    from typer.testing import CliRunner

    from mumur.cli import app

    index = tmp_path / "index"
    runner = CliRunner()
    built = runner.invoke(app, ["index", str(sound_corpus), "--index", str(index), "--model",
                                "world-clip", "--audio", str(tower_dir), "--workers", "0",
                                "--quiet", "--backend", "fp32"])
    assert built.exit_code == 0, built.output
    out = runner.invoke(app, ["search", QUERY, "--index", str(index), "--json", "--lang", "en"])
    assert out.exit_code == 0, out.output
    first = json.loads(out.output)[0]
    assert first["path"].endswith("d_tone.mp4") and first["sound_match"] is True
    text = runner.invoke(app, ["search", QUERY, "--index", str(index), "--lang", "en"]).output
    first_hit = next(line for line in text.splitlines() if line.lstrip().startswith("1."))
    assert "d_tone.mp4" in first_hit and "(matched on sound)" in first_hit


def test_api_and_web_ui_show_a_result_matched_on_sound(sound_corpus, tower_dir, tmp_path):
    from fastapi.testclient import TestClient

    from mumur.index import build_index
    from mumur.serve import create_app, load_resources

    index = tmp_path / "index"
    build_index([sound_corpus], index, "world-clip", audio=tower_dir, num_workers=0,
                progress=False)
    resources = load_resources(index)
    try:
        with TestClient(create_app(resources)) as client:
            body = client.get("/api/search", params={"q": QUERY, "lang": "en", "k": 4}).json()
            page = client.get("/static/app.js")
    finally:
        resources.index.close()
    first = body["results"][0]
    assert first["path"].endswith("d_tone.mp4") and first["sound_match"] is True
    assert all(r["audio_score"] is not None for r in body["results"])
    assert "matched on sound" in page.text and "hit.sound_match" in page.text
