"""Cost per image against archive size: full runs, reruns and the table tools at 10,000 to 1,000,000 images (issue 34).

`python -m benchmarks.scale [--counts 10000,100000,1000000] [--cameras 100] [--skip-run | --seed | --s3] [--work DIR]
[--out FILE]`

The archive is the one `benchmarks.planning` builds (a small JPEG hard-linked COUNT times into `--cameras`
camera folders, so a million files take no space and a minute to make); the model is the null detector
(`bench-null:1`): what is measured is trapline's own cost per image, the plumbing, with nothing for the model
to hide it behind. For each count, each step is one whole process timed from outside (wall seconds; its peak
RSS, its VmHWM sampled every 0.1 s; the 1-minute load average around it):

- `full run`: `trapline reprocess --via actors` into empty tables (the job's own images/s, its steady rate);
- `nothing new`: the same command again (list, look every file up by key, write nothing);
- `+1 % new`: COUNT/100 new files in a new camera folder, then the same command (those images and the listing);
- with `--resume`, `killed at half, resumed`: the command into fresh tables, SIGKILLed once half the archive is
  committed, then run again: the rows it found done, what it processed (`redone`: beyond what was not committed),
  and `duplicates` (images with two rows: there must be none); `--resume-only` runs that step alone;
- the table tools over the COUNT image rows: `tables check`, `tables compact`, `events`, `export --format
  camtrap-dp` (cameras without coordinates allowed), `report`, and `GET /v1/pictures/cameras` (the console's
  Cameras page) on the real ingress app with the control plane, cold then warm, in a process of its own.

`per_image_ms` is a step's wall time over the images it processed (a run) or over COUNT (a table tool).

`--skip-run` reuses the tables a previous run left under `--work` and times only the table tools. `--seed` writes
the tables a finished null-model run leaves instead of running it (every image `empty`, through the job's own
writer, in parts of 512 rows as the job wrote them at a million images) and times a nothing-new run and the table
tools over them: a million rows in minutes where the run takes 40. `--s3` does the runs and the tools on the S3
test server instead of the local disk: a moto server in a process of its own on loopback (the one the tests use),
the same archive uploaded to a bucket there, the tables, the export and the listing on it; what is measured is
trapline over an object store's HTTP (paged listing, one GET per image, multipart writes), not S3's own speed.
Writes `--out` (JSON) and prints one table per count, and the cost per image against archive size.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.bench_model import ensure_null_model
from benchmarks.common import DEFAULT_ROOT, DEFAULT_STORE, machine_info, markdown_table, timed_rss
from benchmarks.planning import LINKS_PER_SOURCE, build_archive, seed_done
from model_store import ModelStore
from serve.local import free_port

# The console's Cameras page as the service answers it: the ingress app with the control plane's routes, no Ray.
CAMERAS_PAGE = r"""
import json, sys, time
from fastapi.testclient import TestClient
from serve.ingress import IngressCore
from trapline.service import service_features
store, work, tables, archive = sys.argv[1:5]
config = {"models": [{"name": "bench-null"}], "store": store,
          "jobs": {"roots": [work], "pictures": [{"name": "scale", "tables": tables, "archive": archive}]}}
app = IngressCore(config, {}, features=service_features()).__serve_build_asgi_app__()
times = []
with TestClient(app) as client:
    for _ in range(2):
        t0 = time.perf_counter()
        r = client.get("/v1/pictures/cameras", params={"source": "scale", "limit": 24})
        times.append(round(time.perf_counter() - t0, 3))
        r.raise_for_status()
print(json.dumps({"cold_s": times[0], "warm_s": times[1], "cameras": r.json()["total"]}))
"""


def add_new(archive: Path, count: int) -> int:
    """COUNT/100 new files (hard links) in a camera folder of their own: what a week's new images look like."""
    new = archive / "cam-new"
    n = max(1, count // 100)
    if new.exists():
        shutil.rmtree(new)
    new.mkdir()
    source = archive.parent / f"{archive.name}-source-new.jpg"
    shutil.copyfile(archive.parent / f"{archive.name}-source-0.jpg", source)
    for i in range(n):
        if i and i % LINKS_PER_SOURCE == 0:
            source = archive.parent / f"{archive.name}-source-new-{i}.jpg"
            shutil.copyfile(archive.parent / f"{archive.name}-source-0.jpg", source)
        os.link(source, new / f"NEW_{i:07d}.jpg")
    return n


S3_BUCKET = "scale"


class S3Server:
    """moto's S3 server as the benchmark runs it: its endpoint, and the CPU seconds its process has used (it shares
    the machine's two cores with the run it serves)."""

    def __init__(self, endpoint: str, pid: int) -> None:
        self.endpoint, self.pid, self._last = endpoint, pid, 0.0

    def cpu_since_last(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        now = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        spent, self._last = now - self._last, now
        return round(spent, 1)


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server in a process of its own on loopback, for the length of the block. Every process started
    meanwhile (trapline and its Ray) reaches it through the environment set here."""
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "TRAPLINE_S3_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL": endpoint}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for _ in range(100):
            with contextlib.suppress(Exception):
                boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=S3_BUCKET)
                break
            time.sleep(0.1)
        yield S3Server(endpoint, proc.pid)
    finally:
        proc.terminate()
        proc.wait()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v


def upload(local: Path, prefix: str, endpoint: str, only: str | None = None) -> int:
    """Every file under `local` (or its folder `only`) to s3://S3_BUCKET/prefix/..., 16 PUTs at a time."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    files = [f for f in (local / only if only else local).rglob("*.jpg")]

    def put(f: Path) -> None:
        client.put_object(Bucket=S3_BUCKET, Key=f"{prefix}/{f.relative_to(local).as_posix()}", Body=f.read_bytes())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, files))
    return len(files)


def committed_rows(tables: Path, seen: dict[Path, int] | None = None) -> int:
    """Image rows in the committed images parts (Parquet footers only; hidden temp files are not parts). `seen`
    keeps each part's count across calls: a committed part never changes, and re-reading every footer five times
    a second took 15 % of a core from the run it watched at a few hundred thousand images."""
    import pyarrow.parquet as pq

    seen = {} if seen is None else seen
    for p in tables.glob("images/*/*/part-*.parquet"):
        if p not in seen:
            seen[p] = pq.ParquetFile(p).metadata.num_rows
    return sum(seen.values())


def killed_and_resumed(reprocess: list[str], tables: Path, count: int, cap_mib: float | None) -> dict[str, Any]:
    """The run SIGKILLed once half the archive is committed, then run again: what the second run found done,
    what it processed, and whether any image has two rows (it must have none)."""
    import pyarrow.dataset as ds

    shutil.rmtree(tables, ignore_errors=True)
    proc = subprocess.Popen(reprocess, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0, parts = time.perf_counter(), {}
    while committed_rows(tables, parts) < count // 2:
        if proc.poll() is not None:
            raise RuntimeError(f"the run ended before half the archive was committed (exit {proc.returncode})")
        time.sleep(0.5)
    proc.kill()  # SIGKILL: no handler runs, nothing is closed
    proc.wait()
    killed_at = time.perf_counter() - t0
    stable, seen, since = False, -1, time.monotonic()
    while not stable:  # the dead driver's local Ray goes with it (fate sharing); wait until no part appears
        now = committed_rows(tables, parts)
        seen, since = (now, time.monotonic()) if now != seen else (seen, since)
        stable = time.monotonic() - since > 3
        time.sleep(0.2)
    res = timed_rss(reprocess, cap_mib=cap_mib)
    report = json.loads(res["stdout"])
    uris = ds.dataset(str(tables / "images"), format="parquet").to_table(columns=["uri"])["uri"]
    return {"wall_s": res["wall_s"], "peak_rss_mib": res["peak_rss_mib"], "load": res["load"],
            "killed_after_s": round(killed_at, 1), "committed_at_kill": seen,
            "already_done": report["already_done"], "processed": report["processed"],
            "redone": report["processed"] - (count - seen), "rows": len(uris),
            "duplicates": len(uris) - len(uris.unique())}


def resume_step(reprocess: list[str], work: Path, count: int, files: int, cap_mib: float | None) -> dict[str, Any]:
    """The `killed at half, resumed` row: `reprocess` into fresh tables of its own (`files` in the archive), then
    those tables removed."""
    again = work / f"tables-resume-{count}"
    out = reprocess.index("--out")
    res = killed_and_resumed([*reprocess[:out + 1], str(again), *reprocess[out + 2:]], again, files, cap_mib)
    shutil.rmtree(again, ignore_errors=True)
    return {"images": count, "step": "killed at half, resumed", **res}


def trapline(*args: str) -> list[str]:
    return [sys.executable, "-m", "trapline.cli", *args]


def run_row(step: str, res: dict[str, Any], count: int) -> dict[str, Any]:
    row = {"images": count, "step": step, "wall_s": res["wall_s"], "peak_rss_mib": res.get("peak_rss_mib"),
           "per_image_ms": round(1000 * res["wall_s"] / count, 4), "load": res["load"]}
    if res.get("over_cap"):
        row["over_cap"] = True  # killed when its memory passed --cap-mib: not bounded
        return row
    try:
        report = json.loads(res["stdout"])
    except (ValueError, TypeError):
        return row
    if isinstance(report, dict) and "to_process" in report:
        row.update(processed=report["processed"], to_process=report["to_process"],
                   images_per_s=report["images_per_s"], steady_images_per_s=report["steady_images_per_s"],
                   per_image_ms=round(1000 * res["wall_s"] / max(report["processed"], 1), 4))
    return row

SEED_ROWS_PER_PART = 512  # the job's parts at a million images: 1,953 of them


def measure(count: int, args: argparse.Namespace, ref: str) -> list[dict[str, Any]]:
    work = Path(args.work)
    local_archive = build_archive(work / f"archive-{count}", count, args.cameras)
    if (local_archive / "cam-new").exists() and not args.skip_run:  # the +1 % of an earlier run
        shutil.rmtree(local_archive / "cam-new")
    archive: Path | str = local_archive
    tables: Path | str = work / f"tables-{count}"
    camtrap: Path | str = work / f"camtrap-{count}"
    if args.s3:  # the same archive on the S3 server, and the tables and the export there too
        t0 = time.perf_counter()
        uploaded = upload(local_archive, f"archive-{count}", args.s3.endpoint)
        args.s3.cpu_since_last()  # from here on, each row says what the server spent on it
        print(f"{count} images: {uploaded} files uploaded to the S3 server in {time.perf_counter() - t0:.0f} s",
              flush=True)
        archive, tables, camtrap = (f"s3://{S3_BUCKET}/{name}-{count}" for name in ("archive", "tables", "camtrap"))
    rows: list[dict[str, Any]] = []

    def say(row: dict[str, Any]) -> None:
        if args.s3:
            row["s3_server_cpu_s"] = args.s3.cpu_since_last()
        rows.append(row)
        extra = (f", {row['images_per_s']} images/s ({row['steady_images_per_s']} steady)"
                 if "images_per_s" in row else "")
        print(f"{count} images, {row['step']}: {row['wall_s']} s, peak RSS {row['peak_rss_mib']} MiB{extra} "
              f"{'KILLED over the memory cap ' if row.get('over_cap') else ''}(load {row['load']})", flush=True)

    reprocess = trapline("reprocess", "--archive", str(archive), "--out", str(tables), "--model", ref,
                         "--store", args.store, "--via", "actors", "--json")
    if args.seed:
        shutil.rmtree(tables, ignore_errors=True)
        t0 = time.perf_counter()
        seeded = seed_done(archive, tables, args.store, ref, rows_per_part=SEED_ROWS_PER_PART)
        print(f"{count} images: tables seeded in {time.perf_counter() - t0:.0f} s ({seeded} rows)", flush=True)
        say(run_row("nothing new", timed_rss(reprocess, cap_mib=args.cap_mib), count))  # over 1,953 parts at 1 M
    elif args.resume_only:  # the kill and the rerun alone: at a million the full run takes 42 min by itself
        say(resume_step(reprocess, work, count, count, args.cap_mib))
        return rows
    elif not args.skip_run:
        if not args.s3:  # the S3 server starts empty with the benchmark
            shutil.rmtree(tables, ignore_errors=True)
        say(run_row("full run", timed_rss(reprocess, cap_mib=args.cap_mib), count))
        say(run_row("nothing new", timed_rss(reprocess, cap_mib=args.cap_mib), count))
        added = add_new(local_archive, count)
        if args.s3:
            upload(local_archive, f"archive-{count}", args.s3.endpoint, only="cam-new")
            args.s3.cpu_since_last()
        say(run_row(f"+1 % new ({added})", timed_rss(reprocess, cap_mib=args.cap_mib), count))
        if args.resume:
            say(resume_step(reprocess, work, count, count + added, args.cap_mib))
    t = str(tables)
    tools = [
        ("tables check", trapline("tables", "check", "--tables", t), (0, 1)),
        ("tables compact", trapline("tables", "compact", "--tables", t), (0,)),
        ("events", trapline("events", "--tables", t, "--model", ref, "--store", args.store), (0,)),
        ("export camtrap-dp", trapline("export", "--tables", t, "--model", ref, "--store", args.store,
                                       "--format", "camtrap-dp", "--allow-missing-deployments",
                                       "--out", str(camtrap)), (0,)),
        ("report", trapline("report", "--tables", t, "--model", ref, "--store", args.store,
                            "--out", str(work / f"report-{count}")), (0,)),
    ]
    if not args.s3:
        shutil.rmtree(camtrap, ignore_errors=True)
    for step, argv, ok in tools:
        say(run_row(step, timed_rss(argv, ok, args.cap_mib), count))
    res = timed_rss([sys.executable, "-c", CAMERAS_PAGE, args.store, str(work), t, str(archive)], cap_mib=args.cap_mib)
    page = json.loads(res["stdout"]) if not res.get("over_cap") else {}
    say({**run_row("GET /v1/pictures/cameras", res, count), "cold_s": page.get("cold_s"), "warm_s": page.get("warm_s")})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.splitlines()[0])
    p.add_argument("--counts", default="10000,100000,1000000")
    p.add_argument("--cameras", type=int, default=100)
    p.add_argument("--store", default=str(DEFAULT_STORE))
    p.add_argument("--work", default=str(DEFAULT_ROOT / "scale"))
    p.add_argument("--skip-run", action="store_true", help="time only the table tools over tables already there")
    p.add_argument("--resume", action="store_true",
                   help="after the runs, one more into fresh tables: SIGKILLed once half is committed, then rerun")
    p.add_argument("--resume-only", action="store_true",
                   help="only that: into fresh tables, SIGKILLed once half is committed, rerun (no other step)")
    p.add_argument("--seed", action="store_true",
                   help="instead of the runs, write the tables a finished null-model run leaves (every image "
                        "`empty`, the job's writer, parts of 512 rows as the job's at a million) and time a "
                        "nothing-new run and the table tools")
    p.add_argument("--s3", action="store_true",
                   help="the archive, the tables and the export on the S3 test server (moto, on loopback)")
    p.add_argument("--cap-mib", type=float, default=6144,
                   help="kill a step whose memory passes this (MiB) and record it as not bounded (default 6144)")
    p.add_argument("--out", default=str(DEFAULT_ROOT / "scale.json"))
    args = p.parse_args(argv)
    args.store = str(Path(args.store).resolve())
    Path(args.work).mkdir(parents=True, exist_ok=True)
    ref = ensure_null_model(ModelStore(args.store))
    rows: list[dict[str, Any]] = []
    result = {"machine": machine_info(), "command": shlex.join(["python", "-m", "benchmarks.scale",
                                                                *(argv or sys.argv[1:])]), "rows": rows}
    if args.s3 and (args.seed or args.resume or args.resume_only or args.skip_run):
        p.error("--s3 times the runs and the tools from an empty bucket: not with --seed, --resume or --skip-run")
    if args.resume_only and (args.seed or args.skip_run):
        p.error("--resume-only runs into fresh tables of its own: not with --seed or --skip-run")
    with s3_server() if args.s3 else contextlib.nullcontext() as server:
        args.s3 = server
        for count in (int(c) for c in args.counts.split(",") if c):
            rows += measure(count, args, ref)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(result, indent=2) + "\n")  # after every count: keep its rows
    print(markdown_table(rows, ["images", "step", "wall_s", "peak_rss_mib", "images_per_s", "steady_images_per_s",
                                "per_image_ms", "cold_s", "warm_s", "s3_server_cpu_s", "over_cap", "load"]))
    full = {r["images"]: r for r in rows if r["step"] == "full run"}
    if len(full) >= 2:
        smallest = full[min(full)]
        for n, r in sorted(full.items()):
            print(f"full run at {n:,} images: {r['steady_images_per_s']} images/s steady, "
                  f"{r['steady_images_per_s'] / max(smallest['steady_images_per_s'], 1e-9):.2f} x the rate at "
                  f"{min(full):,}")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
