"""Server security basics: constant-time key check, bounded requests, no CORS, loopback by
default, nothing served but the files as indexed (symlinks and replacements after indexing)."""

from __future__ import annotations

import inspect
import os

from conftest import PaletteEmbedder
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mumur.index import build_index
from mumur.serve import app as app_module
from mumur.serve import create_app, load_resources, serve
from mumur.serve import resources as resources_module


def _record(resources, name: str):
    return next(r for r in resources.index.store.records().values() if r.path.endswith(name))


def test_api_key_is_compared_in_constant_time(palette_index_dir, monkeypatch):
    calls = []
    real = resources_module.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(resources_module.hmac, "compare_digest", spy)
    resources = load_resources(palette_index_dir, embedder=PaletteEmbedder(),
                               api_key="s3cret-ключ")
    with TestClient(create_app(resources)) as client:
        assert client.get("/api/search", params={"q": "red", "key": "guess"}).status_code == 401
        assert calls and calls[-1] == (b"guess", "s3cret-ключ".encode())
        # Undecodable or non-ASCII keys are a wrong key (401), never a server error.
        for url in ["/api/search?q=red&key=%FF%FE", "/api/search?q=red&key=%ED%A0%80"]:
            assert client.get(url).status_code == 401, url
        ok = client.get("/api/search", params={"q": "red", "key": "s3cret-ключ"})
        assert ok.status_code == 200
    assert resources.check_key("\udc80") is False
    resources.index.close()


def test_request_size_and_query_length_are_bounded(served):
    client, _ = served
    assert client.get("/api/search", params={"q": "x" * 500}).status_code == 200
    assert client.get("/api/search", params={"q": "x" * 501}).status_code == 422
    long_url = client.get("/api/search", params={"q": "red", "pad": "x" * app_module.MAX_URL_BYTES})
    assert long_url.status_code == 414 and "URL" in long_url.json()["error"]
    big = client.request("GET", "/api/search", params={"q": "red"},
                         content=b"x" * (app_module.MAX_BODY_BYTES + 1))
    assert big.status_code == 413 and big.json()["error"]
    small = client.request("GET", "/api/search", params={"q": "red"}, content=b"x" * 100)
    assert small.status_code == 200  # a small ignored body is harmless


def test_cors_is_closed_by_default(served):
    client, _ = served
    origin = {"Origin": "https://elsewhere.example"}
    reply = client.get("/api/search", params={"q": "red"}, headers=origin)
    assert reply.status_code == 200
    assert not any(h.startswith("access-control-") for h in reply.headers)
    preflight = client.options("/api/search", headers={
        **origin, "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 405 and "access-control-allow-origin" not in preflight.headers
    assert reply.headers["x-content-type-options"] == "nosniff"


def test_server_binds_loopback_unless_told(monkeypatch, tmp_path):
    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    import mumur.serve
    from mumur.cli import app

    seen = {}
    monkeypatch.setattr(mumur.serve, "serve", lambda index, **kw: seen.update(kw))
    result = CliRunner().invoke(app, ["serve", "--index", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert seen["host"] == "127.0.0.1"


def test_files_replaced_after_indexing_are_not_served(served, palette_corpus, tmp_path):
    client, resources = served
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG top secret")
    red = _record(resources, "red_0.png")
    assert client.get(f"/api/media/{red.id}").status_code == 200

    # The indexed file becomes a symlink to a file outside the indexed set.
    os.unlink(red.path)
    os.symlink(secret, red.path)
    for route in ("media", "thumb"):
        reply = client.get(f"/api/{route}/{red.id}")
        assert reply.status_code == 404 and b"top secret" not in reply.content

    # A folder on the indexed path becomes a symlink to another folder with the same names.
    yellow = _record(resources, "yellow_3.png")
    sub = palette_corpus / "sub"
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    for f in sub.iterdir():
        (decoy / f.name).write_bytes(b"decoy " + f.name.encode())
    os.rename(sub, tmp_path / "moved")
    os.symlink(decoy, sub)
    reply = client.get(f"/api/media/{yellow.id}")
    assert reply.status_code == 404 and b"decoy" not in reply.content

    # A file legitimately modified is served again once an index run has seen it (same id).
    blue = _record(resources, "blue_2.png")
    with open(blue.path, "ab") as f:
        f.write(b"\0")
    assert client.get(f"/api/media/{blue.id}").status_code == 404
    build_index([palette_corpus], resources.index.store.root, embedder=PaletteEmbedder(),
                num_workers=0, progress=False)
    assert client.get(f"/api/media/{blue.id}").status_code == 200


def test_a_file_indexed_through_a_symlink_is_served(palette_corpus, tmp_path):
    real = tmp_path / "real.png"
    (palette_corpus / "red_0.png").rename(real)
    os.symlink(real, palette_corpus / "red_0.png")
    index = tmp_path / "index"
    build_index([palette_corpus], index, embedder=PaletteEmbedder(), num_workers=0,
                progress=False)
    resources = load_resources(index, embedder=PaletteEmbedder())
    with TestClient(create_app(resources)) as client:
        record = _record(resources, "red_0.png")
        reply = client.get(f"/api/media/{record.id}")
        assert reply.status_code == 200 and reply.content == real.read_bytes()
        assert reply.headers["content-type"] == "image/png"
    resources.index.close()
