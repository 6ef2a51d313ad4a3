"""Open a page in headless Chromium over the DevTools protocol: console errors, a value from the page, a screenshot.

How the report is checked the way a person sees it (tests/e2e/test_review_cli.py) and how the
README's screenshot is made (`make report-screenshot`). Needs a Chromium binary (Debian: `apt-get
install chromium`) and the `websockets` package; nothing is downloaded.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ground import env

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """A Chromium/Chrome binary: $TRAPLINE_CHROMIUM, else the first of the usual names on PATH."""
    explicit = env.CHROMIUM.get()
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


@dataclass
class PageVisit:
    console_errors: list[str] = field(default_factory=list)  # console.error, uncaught exceptions, failed loads
    value: Any = None  # what the `evaluate` expression returned
    screenshot: bytes = b""  # PNG


class _Cdp:
    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=64 * 1024 * 1024, open_timeout=10)
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def call(self, method: str, session: str | None = None, timeout: float = 30.0, **params: Any) -> dict:
        msg_id = next(self.ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict:
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            event = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if event.get("method") == method:
                return event
            self.events.append(event)


def visit(path: str | Path, evaluate: str = "null", chromium: str | None = None, width: int = 1280,
          height: int = 900, max_height: int = 6000, timeout: float = 60.0) -> PageVisit:
    """Load a local HTML file, wait for its load event, evaluate `evaluate`, take a full-page PNG.

    Seven parameters: the page and the script to evaluate, then five keyword defaults of the headless browser: which
    Chromium, the window's width and height, the cap on a full-page height and the timeout; each caller sets at most
    one (the e2e review test none, docs/report_screenshot.py the height cap), so a settings object would be built
    only to carry one value."""
    binary = chromium or find_chromium()
    if binary is None:
        raise FileNotFoundError("no Chromium found (install Debian's `chromium` or set TRAPLINE_CHROMIUM)")
    url = Path(path).resolve().as_uri()
    # Chromium's helper processes can still be writing the profile as it goes: a leftover temp dir is no error.
    with tempfile.TemporaryDirectory(prefix="trapline-chromium-", ignore_cleanup_errors=True) as profile:
        args = [binary, "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={profile}",
                "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
                f"--window-size={width},{height}", "about:blank"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run its sandbox as root (CI containers)
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            ws_url = _devtools_url(proc, timeout)
            return _visit(ws_url, url, evaluate, width, max_height, timeout)
        finally:
            stop_chromium(proc)


def stop_chromium(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """End Chromium and every helper process it started (its own process group: started with start_new_session),
    and return once none is left, so that nothing writes into its profile any more."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the helpers the main process left behind, if any
        except ProcessLookupError:
            break  # the group is empty
        if not _runs_in_group(proc.pid):
            break  # only zombies left: dead, waiting for init to reap them (1-2 s in some containers)
        time.sleep(0.05)
    if proc.poll() is None:
        proc.wait()


def _runs_in_group(pgid: int) -> bool:
    """Whether a process of group `pgid` is still running; a zombie is not (it writes nothing any more). Where
    there is no /proc to tell, any member counts, as `killpg` sees it."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return True
    for d in proc.iterdir():
        if d.name.isdigit():
            try:
                state, _ppid, pgrp = (d / "stat").read_text().rsplit(")", 1)[1].split()[:3]
            except (OSError, ValueError):
                continue  # ended while we looked
            if int(pgrp) == pgid and state != "Z":
                return True
    return False


def _devtools_url(proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line.strip())
        m = re.search(r"DevTools listening on (ws://\S+)", line)
        if m:
            return m.group(1)
    raise RuntimeError("Chromium did not start: " + " | ".join(seen[-5:]))


def _visit(ws_url: str, url: str, evaluate: str, width: int, max_height: int, timeout: float) -> PageVisit:
    cdp = _Cdp(ws_url)
    try:
        target = cdp.call("Target.createTarget", url="about:blank")["targetId"]
        session = cdp.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            cdp.call(domain, session)
        cdp.call("Page.navigate", session, url=url)
        cdp.wait_for("Page.loadEventFired", timeout)
        out = PageVisit()
        result = cdp.call("Runtime.evaluate", session, expression=evaluate, returnByValue=True)
        out.value = result.get("result", {}).get("value")
        size = cdp.call("Page.getLayoutMetrics", session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": min(size["width"], width), "height": min(size["height"], max_height),
                "scale": 1}
        shot = cdp.call("Page.captureScreenshot", session, timeout=timeout, format="png", clip=clip,
                        captureBeyondViewport=True)
        out.screenshot = base64.b64decode(shot["data"])
        out.console_errors = _errors(cdp.events)
        return out
    finally:
        cdp.ws.close()


def _errors(events: list[dict]) -> list[str]:
    errors = []
    for e in events:
        params = e.get("params", {})
        if e.get("method") == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif e.get("method") == "Runtime.exceptionThrown":
            errors.append("exception: " + params["exceptionDetails"].get("text", "")
                          + " " + str(params["exceptionDetails"].get("exception", {}).get("description", "")))
        elif e.get("method") == "Log.entryAdded" and params["entry"].get("level") == "error":
            errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
    return errors
