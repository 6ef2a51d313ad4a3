"""Make docs/console-occurrences.png, the occurrences guide's picture of the console's Occurrences page.

`.venv/bin/python docs/occurrences_screenshot.py`: the test fixture's light-trap sheet and burst
(tests/fixtures/occurrences.py) tracked with `postprocess --filter track`, one occurrence identified, the real app
served by uvicorn in this process (no Ray), the page photographed in headless Chromium.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the fixtures live in tests/

from batch.postprocessing import occurrences  # noqa: E402 - after the path above
from model_store.tables.locations import open_location  # noqa: E402
from model_store.tables.reader import Tables  # noqa: E402
from serve.ingress import IngressCore, token_digest  # noqa: E402
from tests.fixtures.browser import Browser, console_session, console_url  # noqa: E402
from tests.fixtures.occurrences import write_sheet_tables  # noqa: E402
from tests.fixtures.postprocess import postprocess  # noqa: E402
from trapline.service import service_features  # noqa: E402


def main() -> int:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        tables = write_sheet_tables(root / "sheet")
        postprocess(str(tables), "track", {})
        opened = Tables(open_location(str(tables)))
        deer = occurrences.load(opened).rows.query("camera_id == 'burst'").iloc[0]["occurrence_id"]
        occurrences.identify(occurrences.SetPlace(opened), deer, "Capreolus capreolus", "Ann", "white rump patch")
        core = IngressCore({"models": [{"name": "sheetcam"}], "store": str(root / "store"),
                            "jobs": {"roots": [str(root)]}}, {}, token_digest("a"), features=service_features())
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(core.__serve_build_asgi_app__(), host="127.0.0.1", port=port,
                                               log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        with Browser(1280, 760) as b:
            b.before_load(console_session("a", who="Ann"))
            b.navigate(console_url(f"http://127.0.0.1:{port}", str(tables), "occurrences"))
            b.wait("[...document.querySelectorAll('img.snip')].length > 15 && "
                   "[...document.querySelectorAll('img.snip')].every(i => i.naturalWidth > 0)")
            b.screenshot(REPO / "docs" / "console-occurrences.png")
        server.should_exit = True
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
