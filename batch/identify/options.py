"""`trapline identify`'s options, one model for the CLI's flags and a job's JSON (`POST /v1/jobs` kind identify)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from batch.flags import FlagStyle
from batch.options import CommandOptions, Location, StoreRef, StoreRoot, TablesLocation, TablesRef

# Chosen on the synthetic identity sets (benchmarks/reid_archive.py; 150 x 4 and 120 x 3 sightings, hard views):
# 0.5 over-split (ARI 0.978, +9 %), 0.3 gave ARI 0.99-0.997 within 3 % of the true count, 0.2 no better.
DEFAULT_THRESHOLD = 0.3


class IdentifyOptions(CommandOptions):
    """Identify individuals among the kept detections of one set of tables (and `evaluate` the newest run)."""

    tables: TablesLocation
    identifier: StoreRef | None = Field(None, description="NAME[:VERSION|@ALIAS] of an identifier in the store (run)")
    store: StoreRoot = None
    model: TablesRef | None = Field(None, description="the detector version of the tables to read (when several)")
    threshold: float = Field(DEFAULT_THRESHOLD, gt=0.0, lt=1.0, description=(
        "the mean P(same individual) over every pair of two groups of sightings at which they join (a pair the "
        "shortlist never verified counts as 0, so this sits below what one pair would need)"))

    ray: bool = Field(False, description=(
        "describe and match on Ray Data actors: the cluster at $RAY_ADDRESS (a `ray job submit` job's own), else "
        "a local Ray started for the run"))


class IdentifyJobOptions(IdentifyOptions):
    """A run submitted as a job: the identifier is required."""

    identifier: StoreRef = Field(..., min_length=1, description="NAME[:VERSION|@ALIAS] of an identifier in the store")


class IdentifyAction(CommandOptions):
    """What `trapline identify` does besides its options (a command line only: a job is always `run`)."""

    action: Literal["run", "evaluate", "weekly"] = Field("run", description=(
        "run: identify; evaluate: compare the newest run with known individuals (--truth); weekly: the individuals "
        "seen each week"))
    truth: Location | None = Field(None, description="evaluate: CSV of uri or rel_path -> individual")


IDENTIFY_FLAGS = {"tables": FlagStyle(metavar="DST"), "identifier": FlagStyle(metavar="REF"),
                  "action": FlagStyle(positional=True, metavar="{run,evaluate,weekly}")}
