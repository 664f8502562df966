"""HTTP API fuzzed from its own OpenAPI schema (schemathesis): no 5xx, no undeclared status or
content type, no response that violates the schema, schema-valid requests accepted, 405 with
`Allow`. Bounded so the default suite stays fast; the longer run is documented in
docs/search-product.md (`schemathesis run ... --max-examples 1000`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from conftest import PaletteEmbedder, write_palette_image, write_palette_video  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from mumur.index import build_index  # noqa: E402
from mumur.serve import Resources, create_app, load_resources  # noqa: E402


@pytest.fixture(scope="module")
def api_app(tmp_path_factory):
    """The app over a five-item palette index (ids 1..5, so generated ids hit real files)."""
    root = tmp_path_factory.mktemp("schema_api")
    corpus = root / "corpus"
    corpus.mkdir()
    for i, colour in enumerate(["red", "green", "blue", "yellow"]):
        write_palette_image(corpus / f"{colour}.png", colour, seed=i)
    write_palette_video(corpus / "blue_red.mp4", ["blue"] * 4 + ["red"] * 2)
    build_index([corpus], root / "index", embedder=PaletteEmbedder(), num_workers=0,
                progress=False)
    resources = load_resources(root / "index", embedder=PaletteEmbedder())
    yield create_app(resources)
    resources.index.close()


def _published_schema() -> dict:
    # The schema does not depend on the index, so it is read at import time (schemathesis's
    # fixture-based loader does not run under pytest 9); requests go to the fixture's app.
    return create_app(Resources(index=None, thumb_dir=Path("unused"))).openapi()


schema = schemathesis.openapi.from_dict(_published_schema())


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, api_app):
    case.call_and_validate(app=api_app)  # every built-in check: 5xx, status, content type, ...


@pytest.mark.parametrize("item_id", ["5283192584867550721279599354839040", str(2**63),
                                     str(2**63 - 1), "-1"])
@pytest.mark.parametrize("route", ["media", "thumb"])
def test_ids_beyond_64_bits_are_client_errors(api_app, route, item_id):
    from fastapi.testclient import TestClient

    reply = TestClient(api_app).get(f"/api/{route}/{item_id}")
    assert reply.status_code in (404, 422) and reply.json()["error"]


def test_405_names_the_allowed_methods(api_app):
    from fastapi.testclient import TestClient

    client = TestClient(api_app)
    for url in ["/api/health", "/api/search?q=red", "/api/media/1", "/api/thumb/1"]:
        reply = client.request("TRACE", url)
        assert reply.status_code == 405 and reply.headers["allow"] == "GET", url
        assert reply.json()["error"]
