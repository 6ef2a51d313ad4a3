"""The options of `trapline report`: the CLI's flags are generated from this model, and a job's options are
validated against it; `report_options()` gives the builder's own `ReportOptions`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from batch.flags import FlagStyle
from batch.options import SET_FLAGS, Location, ScopedOptions, TablesRef
from batch.review.defaults import DEFAULT_EDGES, DEFAULT_MIN_IOU, DEFAULT_SIDE

if TYPE_CHECKING:
    from batch.review.build import ReportOptions


class ReviewOptions(ScopedOptions):
    out: Location = Field(..., description="directory to write the report into")
    compare: TablesRef | None = Field(None, description="another model version in the same tables (NAME:VERSION or "
                                                  "NAME@ALIAS) to compare with")
    compare_filters_hash: str | None = Field(None, description="the other version's filter set (default: newest)")
    min_iou: float = Field(DEFAULT_MIN_IOU, gt=0, le=1, description="IoU for two versions' boxes to match")
    bands: list[float] = Field(list(DEFAULT_EDGES), description="score-band edges, comma-separated")
    per_band: int = Field(12, ge=1, description="images shown per label and band")
    thumb_size: int = Field(DEFAULT_SIDE, ge=32, le=4096, description="longest thumbnail side in pixels")
    archive: Location | None = Field(None, description=(
        "the archive's root now, when it moved since the run (a local directory): pictures whose recorded path is "
        "gone are found by their relative path under it"))

    @field_validator("bands", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return [float(e) for e in value.split(",") if e.strip()]
            except ValueError:
                raise ValueError("takes comma-separated scores such as 0.2,0.5,0.8") from None
        return value

    def report_options(self) -> ReportOptions:
        from batch.review.build import ReportOptions  # late: the command line is built without the builder's pandas

        return ReportOptions(self.tables, self.out, model=self.model, filters_hash=self.filters_hash,
                             compare=self.compare, compare_filters_hash=self.compare_filters_hash, store=self.store,
                             cameras=self.cameras, since=self.since, until=self.until, edges=self.bands,
                             per_band=self.per_band, thumb_side=self.thumb_size, min_iou=self.min_iou,
                             archive=self.archive)


REVIEW_FLAGS = {**SET_FLAGS, "bands": FlagStyle(metavar="EDGES", default_text=",".join(map(str, DEFAULT_EDGES))),
                "compare": FlagStyle(metavar="OTHER_MODEL_REF"), "out": FlagStyle(metavar="DIR")}
