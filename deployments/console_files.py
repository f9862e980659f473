"""The web console at / and the API's documentation pages, served from files shipped in the package.

The console (deployments/console/) is plain ES modules and CSS, no build step; the
libraries it and the documentation pages use are vendored under console/vendor/ at
pinned versions, with their licences (console/vendor/README.md). Nothing is fetched
from the internet: FastAPI's own /docs and /redoc load Swagger UI and ReDoc from a
CDN, so the app turns those off and these routes serve the same pages from here.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from forge.errors import NotFound

CONSOLE_DIR = Path(__file__).resolve().parent / "console"
_VENDOR = "console/vendor"
# Browsers run ES modules only when served as JavaScript; some systems' mime tables lack .mjs or map .js oddly.
_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}

router = APIRouter(include_in_schema=False)


def _root(request: Request) -> str:
    """Where the app is mounted (a Serve route prefix), so the pages' links work under one too."""
    return request.scope.get("root_path", "").rstrip("/")


def console_file(relative: str) -> Path:
    """The console's file at `relative`; NotFound for anything outside the console's folder."""
    path = (CONSOLE_DIR / relative).resolve()
    if not path.is_relative_to(CONSOLE_DIR) or not path.is_file():
        raise NotFound(f"no console file {relative!r}")
    return path


def _file_response(path: Path) -> FileResponse:
    media_type = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    # Revalidated on every load (ETag): a new release's console is picked up at once.
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "no-cache"})


class ConsoleRoutes:
    """The console's page and files, and the offline documentation pages (methods of the ingress)."""

    @router.get("/")
    async def console_page(self) -> FileResponse:
        return _file_response(console_file("index.html"))

    @router.get("/console/{relative:path}")
    async def console_asset(self, relative: str) -> FileResponse:
        return _file_response(console_file(relative))

    @router.get("/docs")
    async def swagger_ui(self, request: Request) -> HTMLResponse:
        root = _root(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json", title="ModelForge - API",
            swagger_js_url=f"{root}/{_VENDOR}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/{_VENDOR}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{root}/console/favicon.svg",
        )

    @router.get("/redoc")
    async def redoc(self, request: Request) -> HTMLResponse:
        root = _root(request)
        return get_redoc_html(
            openapi_url=f"{root}/openapi.json", title="ModelForge - API",
            redoc_js_url=f"{root}/{_VENDOR}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{root}/console/favicon.svg", with_google_fonts=False,
        )
