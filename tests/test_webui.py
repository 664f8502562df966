"""Web UI in a real headless browser (Debian chromium + Playwright) against a live uvicorn."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from conftest import PaletteEmbedder, write_palette_image, write_palette_video

from mumur.index import build_index
from mumur.serve import create_app, load_resources

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# Under CI (`.ci/run` sets MUMUR_REQUIRE_BROWSER=1 after installing chromium) a missing browser
# is a failure, not a skip; elsewhere the test is skipped with the reason shown.
REQUIRE_BROWSER = os.environ.get("MUMUR_REQUIRE_BROWSER") == "1"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not REQUIRE_BROWSER and not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} missing (apt-get install -y chromium)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_server(tmp_path):
    import uvicorn

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, colour in enumerate(["red", "green", "blue", "yellow"]):
        write_palette_image(corpus / f"{colour}.png", colour, seed=i)
    # VP8/WebM: decodable by every chromium build (H.264 depends on the build's codecs).
    write_palette_video(corpus / "blue_red.webm", ["blue"] * 4 + ["red"] * 2 + ["blue"] * 2,
                        codec="libvpx")
    index = tmp_path / "index"
    build_index([corpus], index, embedder=PaletteEmbedder(), num_workers=0, progress=False)
    resources = load_resources(index, embedder=PaletteEmbedder())
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(resources), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    resources.index.close()


def test_search_and_play_video_from_timestamp(live_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(live_server + "/")
            page.fill("#query", "red")
            page.press("#query", "Enter")
            page.wait_for_selector("#results .card")
            cards = page.locator("#results .card")
            assert cards.count() == 5
            assert "results" in page.text_content("#status")
            video_card = page.locator("#results .card.video").first
            assert "2.5" in video_card.text_content() or "0:02.5" in video_card.text_content()
            # Thumbnails load.
            page.wait_for_function(
                "[...document.querySelectorAll('#results img')].every(i => i.naturalWidth > 0)")
            video_card.click()
            page.wait_for_selector("#player:not([hidden])")
            page.wait_for_function(
                "() => { const v = document.getElementById('video');"
                " return v.readyState >= 2 && v.currentTime >= 2.45; }", timeout=15000)
            state = page.evaluate(
                "() => { const v = document.getElementById('video');"
                " return {t: v.currentTime, paused: v.paused, src: v.currentSrc,"
                " err: v.error && v.error.code}; }")
            assert state["err"] is None
            assert "/api/media/" in state["src"]
            assert 2.45 <= state["t"] <= 4.0  # started at the matched second, not at 0
            # ... and it is playing: time advances past the start.
            page.wait_for_function(
                "() => { const v = document.getElementById('video');"
                " return v.currentTime >= 2.8 || v.ended; }", timeout=15000)
            # Empty query: a message, no request.
            page.keyboard.press("Escape")
            page.fill("#query", "")
            page.press("#query", "Enter")
            assert "Type a query" in page.text_content("#status")
        finally:
            browser.close()
