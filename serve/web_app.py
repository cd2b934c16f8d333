"""The web app and the API docs pages, served by the gateway on the API's own origin.

The web app is ``web/`` built by Vite into ``web/dist``: ``index.html``, content-hashed files
under ``assets/`` (cached for a year: a new build has new names) and the docs pages' assets
under ``docs-assets/`` (Swagger UI and ReDoc from their npm packages, so ``/docs`` and
``/redoc`` work offline). Any other GET that no route answers is a client-side route of the app
and gets ``index.html``, which is never cached, so a new build reaches every browser at its next
load. Unknown API paths, and other methods, keep the API's JSON 404 (a wrong method, its 405).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from serve.errors import on_http_error

__all__ = ["install_web_app", "APP_CSP", "DOCS_CSP", "IMMUTABLE", "API_PREFIXES"]

IMMUTABLE = "public, max-age=31536000, immutable"
# The app loads nothing from elsewhere, runs no inline script and may not be framed.
APP_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's docs pages start Swagger UI and ReDoc with an inline script, and both style inline.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'self'; frame-ancestors 'none'"
)
# Paths that belong to the API or the gateway itself, never to the app's client-side routes.
API_PREFIXES = ("v1/", "v1", "openapi.json", "healthz", "readyz", "metrics")
_SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
_NOT_BUILT = (
    "<!doctype html><meta charset=utf-8><title>Finance One Stop</title>"
    "<p>The web app is not built. <code>make run</code> builds it; or run "
    "<code>npm --prefix web ci &amp;&amp; npm --prefix web run build</code>.</p>"
)


class _HashedAssets(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = IMMUTABLE
        response.headers.update(_SECURITY_HEADERS)
        return response


def _docs_page(page: HTMLResponse) -> HTMLResponse:
    page.headers.update({**_SECURITY_HEADERS, "Content-Security-Policy": DOCS_CSP})
    return page


def install_web_app(api: FastAPI, dist: Path) -> None:
    """Serve the built app from ``dist`` and the offline docs; add after every API route."""
    dist = dist.resolve()
    title = api.title
    openapi_url = api.openapi_url or "/openapi.json"
    api.mount("/assets", _HashedAssets(directory=dist / "assets", check_dir=False), "assets")
    api.mount(
        "/docs-assets", _HashedAssets(directory=dist / "docs-assets", check_dir=False), "docs"
    )

    @api.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _docs_page(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{title} - API docs",
                swagger_js_url="/docs-assets/swagger-ui/swagger-ui-bundle.js",
                swagger_css_url="/docs-assets/swagger-ui/swagger-ui.css",
                swagger_favicon_url="/favicon.svg",
                oauth2_redirect_url="/docs/oauth2-redirect",
            )
        )

    @api.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return _docs_page(get_swagger_ui_oauth2_redirect_html())

    @api.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _docs_page(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{title} - API reference",
                redoc_js_url="/docs-assets/redoc/redoc.standalone.js",
                redoc_favicon_url="/favicon.svg",
                with_google_fonts=False,
            )
        )

    async def app_page(request: Request, error: Exception) -> Response:
        path = request.url.path.lstrip("/")
        if request.method not in {"GET", "HEAD"} or path.startswith(API_PREFIXES):
            return await on_http_error(request, error)
        file = (dist / path).resolve()
        if path and file.is_relative_to(dist) and file.is_file():
            return FileResponse(file, headers={**_SECURITY_HEADERS, "Cache-Control": "no-cache"})
        index = dist / "index.html"
        if not index.is_file():
            return HTMLResponse(_NOT_BUILT, status_code=503, headers=_SECURITY_HEADERS)
        return FileResponse(
            index,
            media_type="text/html",
            headers={
                **_SECURITY_HEADERS,
                "Cache-Control": "no-cache",
                "Content-Security-Policy": APP_CSP,
            },
        )

    # A path no route has is a client-side route of the app, unless it is the API's: Starlette
    # asks a status code's handler before the class's, so the API's other errors are untouched.
    api.add_exception_handler(404, app_page)
