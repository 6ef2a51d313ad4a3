"""An archive with known truth for deployments and clocks: image rows as the tables hold them, and the true times.

Four cameras in Europe/Amsterdam from 1 March to 31 May 2026 (daylight saving starts on 29 March), each deployment
opened with a setup picture at its start and closed with a pickup picture at its end, animals visiting in bursts of
three frames two seconds apart:

    cam01  moved: deployment cam01-a at "north" until 15 April, cam01-b at "south" from 16 April
    cam02  its clock 1 h 03 min fast all along
    cam03  reset to 2000-01-01 00:00:00 by a battery swap on 10 April at 14:00 local, running on from there
    cam04  on local winter time all along (it never moved to summer time): read as a fixed UTC+1 zone

`archive(broken=False)` is the same pictures with every clock right (local time of the zone, daylight saving
followed). `corrections()` are the decisions that put the broken archive right. Used by tests/unit/
test_clock_truth.py and `python -m benchmarks.clock_archive` (the cost of applying them at a million images).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pandas as pd

ZONE = "Europe/Amsterdam"
TZ = zoneinfo.ZoneInfo(ZONE)
FAST_S = 3780  # 1 h 03 min
SWAP_LOCAL = dt.datetime(2026, 4, 10, 14, 0)
RESET_TO = dt.datetime(2000, 1, 1)
LABELS = ("deer", "boar", "fox")

DEPLOYMENTS = [  # (deploymentID, cameraID, locationName, lat, lon, start local, end local)
    ("cam01-a", "cam01", "north", 52.10, 5.10, dt.datetime(2026, 3, 1, 10), dt.datetime(2026, 4, 15, 10)),
    ("cam01-b", "cam01", "south", 52.00, 5.20, dt.datetime(2026, 4, 16, 12), dt.datetime(2026, 5, 31, 12)),
    ("cam02-a", "cam02", "east", 52.05, 5.30, dt.datetime(2026, 3, 1, 11), dt.datetime(2026, 5, 31, 11)),
    ("cam03-a", "cam03", "west", 52.05, 4.90, dt.datetime(2026, 3, 1, 9), dt.datetime(2026, 5, 31, 9)),
    ("cam04-a", "cam04", "ridge", 52.20, 5.00, dt.datetime(2026, 3, 1, 8), dt.datetime(2026, 5, 31, 8)),
]


def deployment_rows() -> list[dict]:
    """The deployments as a Camtrap DP-shaped file gives them (local times, the zone named)."""
    return [{"deploymentID": d, "cameraID": c, "locationID": loc, "locationName": loc, "latitude": lat,
             "longitude": lon, "deploymentStart": s.isoformat(), "deploymentEnd": e.isoformat(), "timezone": ZONE}
            for d, c, loc, lat, lon, s, e in DEPLOYMENTS]


def _utc(local: dt.datetime) -> dt.datetime:
    return local.replace(tzinfo=TZ).astimezone(dt.timezone.utc).replace(tzinfo=None)


def _recorded(camera: str, utc: dt.datetime, broken: bool) -> dt.datetime:
    """What the camera's clock said at true time `utc`."""
    local = utc.replace(tzinfo=dt.timezone.utc).astimezone(TZ).replace(tzinfo=None)
    if not broken:
        return local
    if camera == "cam02":
        return local + dt.timedelta(seconds=FAST_S)
    if camera == "cam03" and local >= SWAP_LOCAL:
        return RESET_TO + (local - SWAP_LOCAL)
    if camera == "cam04":
        return utc + dt.timedelta(hours=1)
    return local


def archive(broken: bool = True, visits_per_day: float = 1.5, seed: int = 7) -> pd.DataFrame:
    """Image rows (uri, rel_path, camera_id, capture_time as the camera said, capture_time_source, status,
    detection_count, label) and the truth (`true_utc`, `true_deployment`), one row per picture."""
    rng = np.random.default_rng(seed)
    rows = []
    for dep, camera, _loc, _lat, _lon, start, end in DEPLOYMENTS:
        s, e = _utc(start), _utc(end)
        times: list[tuple[dt.datetime, str | None]] = [(s, None), (e, None)]  # setup and pickup: people, no animal
        days = (e - s).days
        for day in range(days):
            for _ in range(rng.poisson(visits_per_day)):
                at = s + dt.timedelta(days=day, seconds=int(rng.integers(2 * 3600, 22 * 3600)))
                if at > e - dt.timedelta(hours=2):
                    continue
                label = LABELS[int(rng.integers(len(LABELS)))]
                times += [(at + dt.timedelta(seconds=2 * k), label) for k in range(3)]
        for utc, label in sorted(times, key=lambda x: x[0]):
            rows.append({"camera_id": camera, "true_utc": utc, "true_deployment": dep, "label": label,
                         "capture_time": _recorded(camera, utc, broken)})
    df = pd.DataFrame(rows).sort_values(["camera_id", "true_utc"], kind="stable").reset_index(drop=True)
    frame_no = df.groupby("camera_id").cumcount() + 1  # the camera's file counter: true order
    df["rel_path"] = [f"{c}/IMG_{n:05d}.JPG" for c, n in zip(df["camera_id"], frame_no, strict=True)]
    df["uri"] = "/archive/" + df["rel_path"]
    df["content_id"] = "size=1;mtime_us=0"
    df["capture_time_source"] = "exif"
    df["status"] = np.where(df["label"].isna(), "empty", "ok")
    df["detection_count"] = np.where(df["label"].isna(), 0, 1).astype("int32")
    for c in ("capture_time", "true_utc"):
        df[c] = pd.to_datetime(df[c]).astype("datetime64[us]")
    return df


def detections(images: pd.DataFrame) -> pd.DataFrame:
    """One kept box per animal picture, as the detections table holds them."""
    animals = images[images["label"].notna()]
    return pd.DataFrame({"uri": animals["uri"], "content_id": animals["content_id"], "detection_index": 0,
                         "label": animals["label"], "score": 0.9, "kept": True}).reset_index(drop=True)


def corrections() -> list[dict]:
    """The `correct_clock` decisions that put the broken archive right (fields of model_store's CorrectClock)."""
    swap_utc = _utc(SWAP_LOCAL)
    return [
        {"camera_id": "cam02", "recorded_from": dt.datetime(2026, 1, 1), "recorded_until": dt.datetime(2027, 1, 1),
         "offset_s": FAST_S, "comment": "clock 1 h 03 min fast (the pickup picture)"},
        {"camera_id": "cam03", "recorded_from": dt.datetime(2000, 1, 1), "recorded_until": dt.datetime(2001, 1, 1),
         "offset_s": (RESET_TO - SWAP_LOCAL).total_seconds(), "comment": f"battery swap at {swap_utc} UTC"},
        {"camera_id": "cam04", "recorded_from": dt.datetime(2026, 1, 1), "recorded_until": dt.datetime(2027, 1, 1),
         "zone": "Etc/GMT-1", "comment": "never moved to summer time"},
    ]
