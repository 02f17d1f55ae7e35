"""The web dashboard: a static single page (HTML, one vanilla JS file, CSS) served by the gateway at /ui.

The pages hold no data: the browser asks the gateway's own REST API for everything, with the
bearer token the user typed into the login box (kept in sessionStorage), so the dashboard has
exactly the API's authentication and RBAC. The assets themselves are public. Nothing is loaded
from elsewhere (no CDN): it works on an air-gapped cluster. See docs/dashboard.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import RedirectResponse

from kubetask.api.errors import error_bytes

STATIC = Path(__file__).parent / "static"
PREFIX = "/ui"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".svg": "image/svg+xml"}
# Everything from the gateway itself; connect-src 'self' is where the API calls go.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
                    "Content-Security-Policy": CSP}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def _load() -> tuple[dict[str, Asset], Asset]:
    assets: dict[str, Asset] = {}
    for path in sorted(STATIC.iterdir()):
        if path.is_file() and path.suffix in TYPES and path.name != "index.html":
            body = path.read_bytes()
            assets[path.name] = Asset(body, TYPES[path.suffix], '"' + hashlib.sha256(body).hexdigest()[:20] + '"')
    version = hashlib.sha256(b"".join(a.etag.encode() for a in assets.values())).hexdigest()[:12]
    page = (STATIC / "index.html").read_bytes().replace(b"{{version}}", version.encode())
    return assets, Asset(page, TYPES[".html"], '"' + hashlib.sha256(page).hexdigest()[:20] + '"')


def _answer(request: Request, asset: Asset, cache: str) -> Response:
    headers = {"ETag": asset.etag, "Cache-Control": cache, **SECURITY_HEADERS}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def router() -> APIRouter:
    assets, page = _load()
    routes = APIRouter(prefix=PREFIX, include_in_schema=False)

    @routes.get("")
    async def to_page() -> RedirectResponse:
        # Relative, so it stays right behind a path-stripping proxy (ROOT_PATH).
        return RedirectResponse("ui/", status_code=307)

    @routes.get("/")
    async def index(request: Request) -> Response:
        return _answer(request, page, "no-cache")

    @routes.get("/static/{name}")
    async def static(request: Request, name: str) -> Response:
        asset = assets.get(name)
        if asset is None:
            return Response(error_bytes(404, f"the dashboard has no file {name!r}"), status_code=404, media_type="application/json")
        # index.html asks for ?v=<content hash>, so a cached copy is never stale after an upgrade.
        return _answer(request, asset, "public, max-age=31536000, immutable" if request.query_params.get("v") else "no-cache")

    return routes


def mount(app: FastAPI) -> None:
    """Serve the dashboard at /ui (the only change the gateway's app needs)."""
    app.include_router(router())
