"""Hostile bytes against POST /v1/detect of a deployed app: always 200 or a typed 4xx JSON, never 5xx, never a hang.

Seeds are valid JPEG / PNG / TIFF / GIF / WebP / BMP files; hypothesis truncates them, flips and
inserts bytes, patches the declared dimensions in each format's header to huge values, plants
EXIF oddities (invalid orientations, IFD offsets past the end, huge entry counts) and builds
polyglots (JPEG+ZIP, PNG+HTML, GIF+JS, PDF+JPEG). Bodies go raw or as multipart uploads.
"""

from __future__ import annotations

import collections
import struct
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serve.local import run_local
from tests.fixtures.images import encode, gradient
from tests.fixtures.processes import replica_pid
from tests.fixtures.serving import QUICK_STOP

pytestmark = pytest.mark.ray

EXAMPLES = 150
TIMEOUT_S = 30.0
MAX_PIXELS = 4_000_000
FORMATS = ["JPEG", "PNG", "TIFF", "GIF", "WEBP", "BMP"]
SEEDS = {fmt: encode(gradient(48, 36), fmt) for fmt in FORMATS}
SEEDS["JPEG_EXIF"] = encode(gradient(48, 36), "JPEG", orientation=6)
SEEDS["PNG_RGBA"] = encode(np.dstack([gradient(48, 36), np.full((36, 48), 128, np.uint8)]), "PNG")
SEEDS["JPEG_PROGRESSIVE"] = encode(gradient(48, 36), "JPEG", progressive=True)
POLYGLOT_TAILS = [b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 20 + b"PK\x05\x06" + b"\x00" * 18,
                  b"<html><script>alert(1)</script></html>", b"*/=alert(1)//", b"\x00" * 64]
POLYGLOT_HEADS = [b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", b"GIF89a/*", b"<svg xmlns='http://www.w3.org/2000/svg'>",
                  b"#!/bin/sh\n", b"\x89PNG\r\n\x1a\n"]
STATS: dict[str, collections.Counter] = {"status": collections.Counter(), "op": collections.Counter()}
REPLICA: dict[str, int | None] = {}


@pytest.fixture(scope="module")
def url(ray_cluster, promoted_store) -> Iterator[str]:
    config = {"store": promoted_store("hostile-http").root,
              "models": [{"name": "fixture", "num_cpus": 0.25, "alias_poll_interval_s": 0, **QUICK_STOP}],
              "http": {"port": 0, "ingress_num_cpus": 0.1, "max_pixels": MAX_PIXELS, "max_body_bytes": 2_000_000}}
    with run_local(config, environ={}) as base_url:
        REPLICA["before"] = replica_pid()
        yield base_url


def _huge_dims(data: bytearray, fmt: str, w: int, h: int) -> None:
    """Patch the declared size where each format keeps it (a decompression bomb's header)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        data[16:24] = struct.pack(">II", w, h)
    elif data[:3] == b"GIF" and len(data) >= 10:
        data[6:10] = struct.pack("<HH", w & 0xFFFF, h & 0xFFFF)
    elif data[:2] == b"BM" and len(data) >= 26:
        data[18:26] = struct.pack("<ii", w & 0x7FFFFFFF, -(h & 0x7FFFFFFF))
    elif data[:2] == b"\xff\xd8":
        for marker in (b"\xff\xc0", b"\xff\xc2"):
            i = data.find(marker)
            if i > 0 and len(data) >= i + 9:
                data[i + 5:i + 9] = struct.pack(">HH", h & 0xFFFF, w & 0xFFFF)
    elif data[:4] == b"RIFF" and len(data) >= 30:
        data[26:30] = struct.pack("<HH", w & 0x3FFF, h & 0x3FFF)
    elif data[:2] in (b"II", b"MM") and len(data) >= 12:
        data[8:12] = struct.pack("<I" if data[:2] == b"II" else ">I", w)


def _odd_exif(kind: int, value: int) -> bytes:
    """An APP1 Exif segment with an odd orientation, an IFD offset past the end, or a huge entry count."""
    if kind == 0:  # orientation outside 1..8
        ifd = struct.pack(">H", 1) + struct.pack(">HHII", 0x0112, 3, 1, (value & 0xFFFF) << 16) + b"\0\0\0\0"
        tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + ifd
    elif kind == 1:  # first IFD offset points far past the segment
        tiff = b"II\x2a\x00" + struct.pack("<I", 0xFFFFFF00 | (value & 0xFF))
    else:  # the IFD claims 65535 entries in a few bytes
        tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + b"\xff\xff" + bytes(12)
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


@st.composite
def hostile(draw) -> tuple[bytes, str]:
    seed = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[seed])
    ops = []
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["truncate", "flip", "insert", "huge_dims", "exif", "polyglot_tail",
                                   "polyglot_head", "junk"]))
        ops.append(op)
        if op == "truncate" and len(data) > 1:
            data = data[: draw(st.integers(0, len(data) - 1))]
        elif op == "flip" and data:
            for _ in range(draw(st.integers(1, 8))):
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif op == "insert":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=256))
        elif op == "huge_dims":
            _huge_dims(data, seed, draw(st.integers(2_001, 0xFFFFFFFF)), draw(st.integers(2_001, 0xFFFFFFFF)))
        elif op == "exif" and data[:2] == b"\xff\xd8":
            data[2:2] = _odd_exif(draw(st.integers(0, 2)), draw(st.integers(0, 0xFFFF)))
        elif op == "polyglot_tail":
            data += draw(st.sampled_from(POLYGLOT_TAILS + list(SEEDS.values())))
        elif op == "polyglot_head":
            data[0:0] = draw(st.sampled_from(POLYGLOT_HEADS))
        elif op == "junk":  # a format's magic followed by noise
            data = bytearray(bytes(data[:draw(st.integers(2, 12))]) + draw(st.binary(min_size=0, max_size=512)))
    STATS["op"].update(ops or ["none"])
    return bytes(data), draw(st.sampled_from(["raw", "raw-octet", "multipart"]))


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(case=hostile())
def test_hostile_bodies_get_200_or_a_typed_4xx(url, case):
    data, how = case
    t0 = time.monotonic()
    if how == "multipart":
        r = httpx.post(url + "/v1/detect", files={"image": ("x.jpg", data, "image/jpeg")}, timeout=TIMEOUT_S)
    else:
        kind = "image/jpeg" if how == "raw" else "application/octet-stream"
        r = httpx.post(url + "/v1/detect", content=data, headers={"Content-Type": kind}, timeout=TIMEOUT_S)
    elapsed = time.monotonic() - t0
    STATS["status"][r.status_code] += 1
    assert elapsed < TIMEOUT_S / 2, f"took {elapsed:.1f} s"
    assert r.status_code == 200 or 400 <= r.status_code < 500, (r.status_code, r.text[:500])
    body = r.json()
    if r.status_code == 200:
        assert body["image"]["width"] * body["image"]["height"] <= MAX_PIXELS
    else:
        err = body["error"]
        assert err["type"] in {"invalid_image", "bad_request", "payload_too_large"} and err["message"], err


def test_after_the_fuzz_the_same_replica_still_serves(url):
    ok = httpx.post(url + "/v1/detect", content=encode(gradient(640, 480)), timeout=TIMEOUT_S)
    assert ok.status_code == 200 and len(ok.json()["detections"]) == 4
    assert httpx.get(url + "/readyz", timeout=TIMEOUT_S).status_code == 200
    tried = sum(STATS["status"].values())
    if not tried:
        pytest.skip("the fuzz test did not run in this session")
    print(f"\nhostile HTTP bodies tried: {tried}, answers {dict(STATS['status'])}, mutations {dict(STATS['op'])}")
    assert tried >= EXAMPLES
    assert all(code == 200 or 400 <= code < 500 for code in STATS["status"])
    # The replica that answered everything is the one that was there before: none crashed.
    assert REPLICA["before"] is not None and replica_pid() == REPLICA["before"]


# A model name is looked up among the served ones (never used as a path): anything else is not served, a 404. A
# version or alias is parsed as a reference first: one that is not a plain name is a 422 naming the rule.
@pytest.mark.parametrize(("params", "status", "kind"), [
    ({"model": "../fixture"}, 404, "not_found"), ({"model": "..%2ffixture"}, 404, "not_found"),
    ({"model": "/etc/passwd"}, 404, "not_found"), ({"version": ".."}, 422, "invalid_parameter"),
    ({"version": "%2e%2e"}, 422, "invalid_parameter"), ({"version": "1/../../2"}, 422, "invalid_parameter"),
    ({"alias": "../production"}, 422, "invalid_parameter"), ({"alias": "/abs"}, 422, "invalid_parameter"),
    ({"model": "fixture", "version": "..\\..\\1"}, 422, "invalid_parameter"),
])
def test_traversal_in_query_parameters_is_refused(url, params, status, kind):
    r = httpx.post(url + "/v1/detect", params=params, content=encode(gradient(64, 48)), timeout=TIMEOUT_S)
    assert (r.status_code, r.json()["error"]["type"]) == (status, kind), r.text
