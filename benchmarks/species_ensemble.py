"""The species ensemble's, smoothing's and taxa lists' agreement with their references and their cost over a
million detections (issue 57).

`python -m benchmarks.species_ensemble [--count 1000000] [--path-count 100000]`

Agreement: every case of tests/fixtures/reference/speciesnet/ensemble_expected.json.gz (SpeciesNet 5.0.6's
`combine_predictions` on 3,000 generated detections) decided by trapline's `combine`, counted by source.

Cost, in one process on one core, as CPU time (`time.process_time`: on a shared, oversubscribed machine the wall
time says more about the neighbours than about the code):
- `combine` alone over COUNT detections (the fixture's cases cycled, the geofence on, each with its location);
- the whole classifier-answer path a reprocess or `trapline postprocess` runs per detection
  (`classification_from_scores`: top-k, the filters, the record), with and without `species_ensemble`, over
  PATH_COUNT probability vectors of 50 labels; the difference is what the ensemble adds per detection.
- smoothing (MegaDetector's rules, sequence level) over COUNT detections: the smoothing fixture's sequences cycled;
- a taxa list's restriction (`TaxaRestriction.target`) over COUNT labels.
The figures are set against a reprocess's time per image (benchmarks NOTES.md section 3: ~5 images/s on this machine,
200 ms per image) at the fixture's detections per image.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np

from model_store.core.classifier import classification_from_scores
from model_store.core.config.classifier import ClassifierConfig
from model_store.core.filters import FilterSet
from model_store.core.records import ModelInfo
from model_store.core.species.ensemble import EnsembleConfig, SpeciesData, combine
from model_store.core.species.geofence import Geofence, Location
from model_store.core.species.smoothing import Item, SmoothingConfig, smooth
from model_store.core.species.taxa_list import TaxaList, TaxaRestriction
from model_store.core.species.taxonomy import Taxonomy

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "reference" / "speciesnet"
REPROCESS_MS_PER_IMAGE = 200.0  # benchmarks NOTES.md section 3: the job's own rate, ~5 images/s on 2 cores


def load() -> tuple[dict, SpeciesData]:
    ref = json.loads(gzip.decompress((FIXTURE / "ensemble_expected.json.gz").read_bytes()))
    data = SpeciesData(Taxonomy.parse((FIXTURE / "taxonomy.txt").read_text()),
                       Geofence.parse((FIXTURE / "geofence.json").read_bytes()))
    return ref, data


def agreement(ref: dict, data: SpeciesData) -> dict:
    labels, on, off = ref["labels"], EnsembleConfig(), EnsembleConfig(geofence=False)
    agree, by_source = 0, {}
    for det, conf, idx, scores, country, region, fence, want, want_score, source in ref["cases"]:
        loc = Location(country=country, admin1_region=region) if country or region else None
        got = combine(det, conf, [labels[i] for i in idx], scores, data, loc, on if fence else off)
        same = (got.label, got.source) == (labels[want], source) and abs(got.score - want_score) <= 1e-12
        agree += same
        by_source.setdefault(source, [0, 0])
        by_source[source][0] += same
        by_source[source][1] += 1
    return {"cases": len(ref["cases"]), "agree": agree, "by_source": by_source}


def time_combine(ref: dict, data: SpeciesData, count: int) -> float:
    labels = ref["labels"]
    cases = [(det, conf, [labels[i] for i in idx], scores,
              Location(country=c, admin1_region=r) if c or r else None)
             for det, conf, idx, scores, c, r, *_ in ref["cases"]]
    config = EnsembleConfig()
    t0 = time.process_time()
    for n in range(count):
        det, conf, top, scores, loc = cases[n % len(cases)]
        combine(det, conf, top, scores, data, loc, config)
    return time.process_time() - t0


def time_path(data: SpeciesData, count: int, with_ensemble: bool) -> float:
    rng = np.random.default_rng(57)
    labels = [x for x in data.taxonomy.labels if x.count(";") == 6][:50]
    cfg = ClassifierConfig.model_construct(backend="onnx-classifier", labels=labels, taxonomy={}, taxonomy_ranks=[],
                                           top_k=5)
    info = ModelInfo(name="species", version="1", sha256="0" * 64)
    fs = FilterSet.from_specs([{"name": "species_ensemble", "config": {"country": "DEU"}}]) if with_ensemble \
        else FilterSet()
    probs = rng.dirichlet(np.full(len(labels), 0.05), size=min(count, 10_000)).astype(np.float32)
    t0 = time.process_time()
    for n in range(count):
        classification_from_scores(info, cfg, probs[n % len(probs)], fs, detection=("animal", 0.8),
                                   species=data if with_ensemble else None)
    return time.process_time() - t0


def smoothing_agreement_and_cost(count: int) -> tuple[int, int, float]:
    """(labels agreeing, labels compared) on the default variant at sequence level, and seconds for `count`
    detections smoothed sequence by sequence."""
    ref = json.loads(gzip.decompress((FIXTURE / "smoothing_expected.json.gz").read_bytes()))
    labels, names = ref["labels"], {"1": "animal", "2": "person", "3": "vehicle"}

    def fresh() -> list[list[Item]]:
        return [[Item(names[c], conf, labels[idx[0]] if idx else None, sc[0] if idx else 0.0)
                 for image in seq for c, conf, idx, sc in image] for seq in ref["sequences"]]

    config, seqs = SmoothingConfig(), fresh()
    for seq in seqs:
        smooth(seq, config)
    got = [labels.index(it.label) if it.label else None for seq in seqs for it in seq]
    want = [x for image in ref["expected"]["default"]["sequence"] for x in image]
    agree = sum(a == b for a, b in zip(got, want, strict=True))
    per_round = sum(len(s) for s in seqs)
    done, t = 0, 0.0
    while done < count:
        seqs = fresh()
        t0 = time.process_time()
        for seq in seqs:
            smooth(seq, config)
        t += time.process_time() - t0
        done += per_round
    return agree, len(want), t / done * count


def taxa_cost(data: SpeciesData, count: int) -> float:
    restriction = TaxaRestriction(TaxaList.parse("latin,common\nfelidae,cat\nursus arctos,brown bear\ncanis,dog\n"),
                                  data.taxonomy.labels)
    labels = list(data.taxonomy.labels)
    t0 = time.process_time()
    for n in range(count):
        restriction.target(labels[n % len(labels)])
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1_000_000, help="detections through `combine`")
    ap.add_argument("--path-count", type=int, default=100_000, help="probability vectors through the answer path")
    args = ap.parse_args()
    ref, data = load()
    agreed = agreement(ref, data)
    print(f"agreement with SpeciesNet {ref['speciesnet']}: {agreed['agree']}/{agreed['cases']} decisions "
          f"({100 * agreed['agree'] / agreed['cases']:.1f} %), label, source and score")
    for source, (same, n) in sorted(agreed["by_source"].items(), key=lambda kv: -kv[1][1]):
        print(f"  {source:40s} {same}/{n}")
    s = time_combine(ref, data, args.count)
    per = s / args.count * 1e6
    print(f"combine: {args.count:,} detections in {s:.2f} s, {per:.2f} us per detection")
    # alternated in rounds, so that a change in the machine's load falls on both
    plain = full = 0.0
    for _ in range(5):
        plain += time_path(data, args.path_count // 5, False)
        full += time_path(data, args.path_count // 5, True)
    added = (full - plain) / args.path_count * 1e6
    print(f"answer path: {plain / args.path_count * 1e6:.1f} us per detection without the ensemble, "
          f"{full / args.path_count * 1e6:.1f} us with it: +{added:.1f} us")
    print(f"over 1,000,000 detections: combine {per:.2f} s, the ensemble in the answer path +{added:.1f} s")
    agree, compared, smooth_s = smoothing_agreement_and_cost(args.count)
    print(f"smoothing: {agree}/{compared} labels as MegaDetector's (default options, sequence level); "
          f"{smooth_s:.2f} s per 1,000,000 detections")
    taxa_s = taxa_cost(data, args.count)
    print(f"taxa list: {taxa_s:.2f} s for {args.count:,} labels")
    for per_image in (1, 3):
        share = per_image * added / 1000 / REPROCESS_MS_PER_IMAGE * 100
        print(f"  at {per_image} detection(s) per image: {share:.3f} % of a reprocess's "
              f"{REPROCESS_MS_PER_IMAGE:.0f} ms per image (target <= 5 %)")


if __name__ == "__main__":
    main()
