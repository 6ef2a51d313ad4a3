"""The console's own files: `/console` (its page) and `/console/NAME` (its scripts and styles), from console/.

The console is static HTML + JS over the routes of this package and of the jobs (the token is entered in the page).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from trapline.base.errors import NotFoundError

router = APIRouter()
CONSOLE = Path(__file__).with_name("console")
# Every file shipped in console/ (ES modules: index.html loads console.js, which imports the pages; a page of its
# own is one module there and its import in console.js); the set is fixed when the module loads, so no request can
# name anything else. Module scripts need a JavaScript media type (the browser checks it, nosniff).
_MEDIA = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
CONSOLE_FILES = {p.name: _MEDIA[p.suffix] for p in sorted(CONSOLE.iterdir()) if p.suffix in _MEDIA}
# The console loads nothing from elsewhere and runs no inline script or style: the browser enforces it.
CONSOLE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                   "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


@router.get("/console", include_in_schema=False)
async def console_page() -> FileResponse:
    """The console: static HTML + JS over these routes (the token is entered in the page)."""
    return FileResponse(CONSOLE / "index.html", media_type="text/html", headers=CONSOLE_HEADERS)


@router.get("/console/{name}", include_in_schema=False)
async def console_file(name: str) -> FileResponse:
    if name not in CONSOLE_FILES:
        raise NotFoundError(f"no console file {name!r}")
    return FileResponse(CONSOLE / name, media_type=CONSOLE_FILES[name], headers=CONSOLE_HEADERS)
