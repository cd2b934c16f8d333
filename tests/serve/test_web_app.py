"""The gateway serves the built web app and the API docs from its own origin: hashed assets
cached for good, client-side routes answered with the app, nothing fetched from another host,
and the API's own paths and errors untouched."""

from __future__ import annotations

import re

import httpx
import pytest

from core.settings import Settings
from serve.web_app import APP_CSP, IMMUTABLE

_ASSET = re.compile(r'(?:src|href)="(/[^"]+)"')


@pytest.fixture(scope="module")
def built(gateway_settings: Settings) -> None:
    index = gateway_settings.web_dist / "index.html"
    assert index.is_file(), f"{index} is missing: `make web` builds the app (make test does)"


async def test_root_with_app_built_serves_index_with_csp_and_no_cache(
    built: None, http: httpx.AsyncClient, gateway_url: str
) -> None:
    response = await http.get(f"{gateway_url}/")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert '<div id="root">' in response.text
    assert response.headers["content-security-policy"] == APP_CSP
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_client_route_with_app_built_gets_the_app(
    built: None, http: httpx.AsyncClient, gateway_url: str
) -> None:
    root = await http.get(f"{gateway_url}/")
    for route in ("/markets", "/instrument/okx:BTC-USDT", "/watchlists/42", "/operations"):
        response = await http.get(f"{gateway_url}{route}")
        assert response.status_code == 200, route
        assert response.text == root.text


async def test_app_assets_are_local_and_cached_for_good(
    built: None, http: httpx.AsyncClient, gateway_url: str
) -> None:
    index = (await http.get(f"{gateway_url}/")).text
    assert "//" not in "".join(re.findall(r'(?:src|href)="([^"]+)"', index))
    assets = [path for path in _ASSET.findall(index) if path.startswith("/assets/")]
    assert assets, index
    for path in assets:
        response = await http.get(f"{gateway_url}{path}")
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == IMMUTABLE


async def test_unknown_api_path_keeps_json_404_and_wrong_method_its_405(
    http: httpx.AsyncClient, gateway_url: str
) -> None:
    missing = await http.get(f"{gateway_url}/v1/no-such-thing")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    posted = await http.post(f"{gateway_url}/markets")
    assert posted.status_code == 404 and posted.json()["code"] == "not_found"
    wrong_method = await http.delete(f"{gateway_url}/v1/auth/me")
    assert wrong_method.status_code == 405 and wrong_method.json()["code"] == "method_not_allowed"


async def test_path_traversal_out_of_the_app_gets_the_app_not_the_file(
    built: None, gateway_url: str
) -> None:
    # Sent as written: an HTTP client would normalize the dots away.
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as raw:
        for path in ("/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2f..%2fetc%2fpasswd"):
            response = await raw.get(httpx.URL(gateway_url, raw_path=path.encode()))
            assert "root:" not in response.text, path


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        (
            "/docs",
            (
                "/docs-assets/swagger-ui/swagger-ui-bundle.js",
                "/docs-assets/swagger-ui/swagger-ui.css",
            ),
        ),
        ("/redoc", ("/docs-assets/redoc/redoc.standalone.js",)),
    ],
)
async def test_docs_pages_load_everything_from_the_gateway(
    built: None, http: httpx.AsyncClient, gateway_url: str, page: str, assets: tuple[str, ...]
) -> None:
    response = await http.get(f"{gateway_url}{page}")
    assert response.status_code == 200
    # No CDN, no Google fonts: every src/href is a path on this origin.
    referenced = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', response.text)
    assert referenced and all(
        ref.startswith("/") and not ref.startswith("//") for ref in referenced
    )
    for asset in assets:
        assert asset in response.text
        fetched = await http.get(f"{gateway_url}{asset}")
        assert fetched.status_code == 200 and len(fetched.content) > 10_000, asset
    assert (await http.get(f"{gateway_url}/openapi.json")).json()["info"]["title"]
