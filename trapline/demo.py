"""`make demo`: the whole system on the embedded default, end to end, in about a minute.

1. publish the shipped demo detectors and the demo species classifier to ./models (production -> 1), and
   MegadetectorLite (zamba's YOLOX-tiny, fetched from PyPI once) to run over real camera-trap photos into
   ./out/photos (offline, or without the YOLOX package, the demo says so and goes on);
2. render sample camera-trap scenes into ./samples;
3. start Ray Serve locally (127.0.0.1) and send every sample over HTTP, printing detections;
4. hot-swap production to version 2 with no restart, show the switch, and roll back;
5. reprocess the sample archive through the same live deployment into ./out/detections, with the
   `animal` detections classified by demo-species (rolled up to the family when unsure), and show them;
6. shut everything down.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import httpx
from pydantic import Field

from batch.flags import add_model_arguments
from batch.options import CommandOptions, Location, StoreRoot, parse_options
from batch.reprocess.job import run_reprocess
from batch.reprocess.options import ReprocessOptions
from batch.reprocess.summary import format_report
from ground import env, ray_output
from ground.entry import add_verbose
from ground.ray_runtime import ensure_ray, shutdown_ray
from model_store import ModelStore
from model_store.demo.megadetector import NAME as MD_NAME
from model_store.demo.megadetector import ZAMBA_VERSION, UnavailableError, publish_megadetector
from model_store.demo.photos import PHOTOS, run_photos
from model_store.demo.publish import DEMO_NAME, SPECIES_NAME, publish_demo
from model_store.demo.scenes import write_samples
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import CLASSIFICATIONS
from model_store.tables.table_set import resolve_table_set
from serve.defaults import local_default
from serve.local import run_local
from trapline.service import build_service


def _print_result(name: str, body: dict, truth: list[dict]) -> None:
    dets = body["detections"]
    found = ", ".join(f"{d['label']} {d['score']:.2f}" for d in dets) or "nothing (blank)"
    print(f"  {name}  {body['model']['name']}:{body['model']['version']}  "
          f"{len(dets)} detections / {len(truth)} objects drawn: {found}")


def _detect(client: httpx.Client, url: str, path: Path) -> dict:
    resp = client.post(f"{url}/v1/detect", content=path.read_bytes(), headers={"Content-Type": "image/jpeg"})
    resp.raise_for_status()
    return resp.json()


def _real_photos(store: ModelStore, out: Path) -> None:
    """MegadetectorLite (from zamba's wheel on PyPI) over the real camera-trap photos, or one line saying why not."""
    try:
        fresh = publish_megadetector(store)
    except UnavailableError as exc:
        print(f"      real photos skipped: MegadetectorLite unavailable ({exc}); the synthetic models run on")
        return
    how = f"converted from zamba {ZAMBA_VERSION}'s wheel" if fresh else "already published"
    print(f"      {MD_NAME}:1 ({how}) on {len(list(PHOTOS.glob('*.jpg')))} real camera-trap photos "
          f"(credits: model_store/demo/assets/photos/ATTRIBUTION.md), boxed copies in {out}/:")
    for line in run_photos(store, out):
        print(f"  {line}")


def run(store_root: str, samples: Path, out: Path) -> int:
    store = ModelStore(store_root)
    published = publish_demo(store)
    print(f"[1/5] model store {store.root}: {', '.join(published) or 'demo models already published'}; "
          f"{DEMO_NAME}@production -> {store.resolve(DEMO_NAME).version}")
    _real_photos(store, out.parent / "photos")
    truth = json.loads(write_samples(samples).read_text())["images"]
    print(f"[2/5] rendered {len(truth)} sample scenes into {samples}/")

    config = local_default(store.root, [DEMO_NAME], cpus=os.cpu_count())
    print("[3/5] starting Ray Serve on 127.0.0.1 (token auth on, dashboard off) ...")
    # Started here rather than by run_local so the replicas' logs stay out of the demo's output.
    ensure_ray(num_cpus=os.cpu_count(), log_to_driver=False)
    try:
        return _serve_and_reprocess(store, config, samples, truth, out)
    finally:
        shutdown_ray()
        print("done: service stopped, Ray shut down.")


def _serve_and_reprocess(store: ModelStore, config, samples: Path, truth: dict, out: Path) -> int:
    with run_local(config, builder=build_service) as url, httpx.Client(timeout=60) as client:
        print(f"      serving at {url}  (OpenAPI: {url}/docs)")
        for name in sorted(truth):
            _print_result(name, _detect(client, url, samples / name), truth[name])
        bad = client.post(f"{url}/v1/detect", content=b"\xff\xd8\xff truncated")
        print(f"      a broken upload gets a typed error: HTTP {bad.status_code} {bad.json()['error']['type']}")

        print(f"[4/5] hot swap: trapline models promote {DEMO_NAME}:2 (the service keeps running)")
        store.promote(f"{DEMO_NAME}:2")
        first = samples / sorted(truth)[0]
        t0 = time.monotonic()
        try:
            while (body := _detect(client, url, first))["model"]["version"] != "2":
                if time.monotonic() - t0 > 60:
                    raise TimeoutError("the service did not switch to version 2 within 60 s")
                time.sleep(0.2)
            print(f"      switched to version 2 after {time.monotonic() - t0:.1f} s with no failed request")
            _print_result(first.name, body, truth[first.name])
        finally:
            store.rollback(DEMO_NAME)
            print(f"      rolled back: {DEMO_NAME}@production -> {store.resolve(DEMO_NAME).version}")

        print(f"[5/5] reprocessing {samples}/ through the live deployment into {out}/ ...")
        report = run_reprocess(ReprocessOptions(
            archive=str(samples), out=str(out), model=f"{DEMO_NAME}:2", store=store.root, via="serve",
            classify=[f"{SPECIES_NAME}@production=animal"], filters=SPECIES_FILTERS,
            # On two CPUs the replica holds one: the read, client and classify stages share the other.
            read_cpus=0.25, classify_cpus=0.25), log=lambda m: None)
        print("      " + format_report(report).replace("\n", "\n      "))
    _print_species(out, truth)
    return 0


# Below 0.6 the answer is rolled up the taxonomy (two Canidae kinds sum to "Canidae").
SPECIES_FILTERS = {"rank_rollup": {"classifier": SPECIES_NAME, "threshold": 0.6}}
SHOW_MIN_SCORE = 0.5


def _print_species(out: Path, truth: dict) -> None:
    """One line per classified detection of the reprocess tables: box, detector score, species and score."""
    tables = Tables(open_location(str(out)))
    tset = resolve_table_set(tables, f"{DEMO_NAME}:2")
    name, version, set_hash = tset.model_name, tset.model_version, tset.filters_hash
    images = tables.current_images(name, version, set_hash)
    dets = tables.committed_detections(images, name, version, set_hash, kept_only=True)
    cls = tables.committed_detections(images, name, version, set_hash, table=CLASSIFICATIONS)
    rows = cls.merge(dets, on=["uri", "content_id", "run_id", "detection_index"], suffixes=("", "_det"))
    shown = rows[rows["score_det"] >= SHOW_MIN_SCORE]
    print(f"      species of the {len(shown)} animal detection(s) scoring >= {SHOW_MIN_SCORE} "
          f"({len(rows) - len(shown)} weaker ones are in the tables too):")
    for r in shown.itertuples():
        image = Path(r.uri).name
        drawn = sorted({o["kind"] for o in truth.get(image, []) if o.get("kind")})
        rank = f" ({r.rank})" if isinstance(r.rank, str) else ""  # null (a model label) reads back as NaN
        print(f"  {image}  {r.label_det} {r.score_det:.2f} -> species {r.label} {r.score:.2f}{rank}  "
              f"[{' > '.join(r.taxon_path)}]  drawn here: {', '.join(drawn) or '-'}")


class DemoOptions(CommandOptions):
    """Where `make demo` keeps its models, its sample archive and its tables."""

    store: StoreRoot = None
    samples: Location = Field("./samples", description="the sample archive (written when missing)")
    out: Location = Field("./out/detections", description="the demo's tables")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, DemoOptions)  # the flags from the model, as every command's (batch/flags.py)
    add_verbose(parser)
    args = vars(parser.parse_args(argv))
    verbose = args.pop("verbose", False)
    o = parse_options(DemoOptions, args, "demo")
    with ray_output.mode(quiet=not verbose):  # a caller in the same process (a test) gets its mode back
        return run(o.store or env.MODEL_STORE.get(), Path(o.samples), Path(o.out))


if __name__ == "__main__":
    raise SystemExit(main())
