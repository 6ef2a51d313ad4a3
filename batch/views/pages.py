"""The console's own files: `/console` (its page), `/console/NAME` (its scripts and styles), from console/, and
`/console/modules.json`, the list the console's entry loads: its page modules and style sheets.

The console is static HTML + JS over the routes of this package and of the jobs (the token is entered in the page).
A page module is a file of console/ that exports `pages` (`export const pages = ...`); nothing lists them by hand, so a
new page is its module (and, with styles of its own, its `.css`) and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse

from ground.errors import NotFoundError

router = APIRouter()
CONSOLE = Path(__file__).with_name("console")
# Every file shipped in console/ (ES modules: index.html loads console.js, which loads the page modules listed
# below); the set is fixed when the module loads, so no request can name anything else. Module scripts need a
# JavaScript media type (the browser checks it, nosniff).
_MEDIA = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
CONSOLE_FILES = {p.name: _MEDIA[p.suffix] for p in sorted(CONSOLE.iterdir()) if p.suffix in _MEDIA}
_EXPORTS_PAGES = re.compile(r"^export const pages\b", re.MULTILINE)


def page_modules() -> list[str]:
    """The console's page modules, in name order: its .js files that export `pages` (the nav orders them itself)."""
    return [n for n, media in CONSOLE_FILES.items()
            if media == "text/javascript" and _EXPORTS_PAGES.search((CONSOLE / n).read_text())]


def pages_reading(paths: Iterable[str]) -> list[str]:
    """The page modules that read any of the routes at `paths` (each as a page spells it: up to its first `{`)."""
    prefixes = {p.split("{", 1)[0] for p in paths} - {""}
    return [n for n in page_modules() if any(pre in (CONSOLE / n).read_text() for pre in prefixes)]


# What console.js loads: read once, as the files are.
MODULES = {"pages": page_modules(), "styles": [n for n, media in CONSOLE_FILES.items() if media == "text/css"]}
# The console loads nothing from elsewhere and runs no inline script or style: the browser enforces it.
CONSOLE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                   "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


@router.get("/console", include_in_schema=False)
async def console_page() -> FileResponse:
    """The console: static HTML + JS over these routes (the token is entered in the page)."""
    return FileResponse(CONSOLE / "index.html", media_type="text/html", headers=CONSOLE_HEADERS)


@router.get("/console/modules.json", include_in_schema=False)
async def console_modules() -> JSONResponse:
    """The page modules and style sheets console.js loads (declared before `/console/{name}`, which would take it)."""
    return JSONResponse(MODULES, headers=CONSOLE_HEADERS)


@router.get("/console/{name}", include_in_schema=False)
async def console_file(name: str) -> FileResponse:
    if name not in CONSOLE_FILES:
        raise NotFoundError(f"no console file {name!r}")
    return FileResponse(CONSOLE / name, media_type=CONSOLE_FILES[name], headers=CONSOLE_HEADERS)
