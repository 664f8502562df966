"""Cold text search: the vision tower is never built, and nothing is printed to stderr."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mumur.encoders import ClipVisionEncoder
from mumur.index import Index, build_index


def _spy_vision(monkeypatch) -> list:
    built = []
    original = ClipVisionEncoder.__init__

    def spy(self, *args, **kwargs):
        built.append(args)
        original(self, *args, **kwargs)

    monkeypatch.setattr(ClipVisionEncoder, "__init__", spy)
    return built


def test_text_search_builds_no_vision_tower_and_prints_no_loading_noise(
        tiny_clip_checkpoint, palette_corpus, tmp_path, monkeypatch, capfd):
    from mumur.cli import app

    folder, _ = tiny_clip_checkpoint
    index = tmp_path / "index"
    build_index([palette_corpus], index, str(folder), num_workers=0, progress=False)
    capfd.readouterr()
    built = _spy_vision(monkeypatch)
    out = CliRunner().invoke(app, ["search", "a red square", "--index", str(index), "--json"])
    assert out.exit_code == 0, out.output
    assert len(json.loads(out.stdout)) == 10
    assert built == []  # the recorded vision tower stood in for it
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err + out.output
    assert "it/s" not in captured.err + out.output
    # An image query needs the vision tower: loaded then, and the same model (identity checked).
    idx = Index(index)
    text_first = idx.search("a red square", k=3)
    hit = idx.search_image(text_first.results[0].path, k=1)
    assert len(built) == 1 and hit.results[0].path == text_first.results[0].path
    assert [r.id for r in idx.search("a red square", k=3).results] == \
        [r.id for r in text_first.results]
    idx.close()


def test_an_index_without_the_vision_record_loads_in_full_and_gets_it_on_the_next_run(
        tiny_clip_checkpoint, palette_corpus, tmp_path, monkeypatch):
    folder, _ = tiny_clip_checkpoint
    index = tmp_path / "index"
    build_index([palette_corpus], index, str(folder), num_workers=0, progress=False)
    idx = Index(index)
    idx.store._conn.execute("DELETE FROM meta WHERE key='vision_record'")  # an older index
    built = _spy_vision(monkeypatch)
    assert idx.search("a red square", k=3).results
    assert len(built) == 1
    idx.close()
    build_index([palette_corpus], index, str(folder), num_workers=0, progress=False)
    idx = Index(index)
    assert "vision_record" in idx.store.meta()
    idx.close()
