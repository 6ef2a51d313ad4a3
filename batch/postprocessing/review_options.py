"""The options of `trapline review confirm | reject | relabel | empty | add`: one pydantic model each (batch/commands.py
registers them; batch/flags.py makes the flags). Light: every command line builds the registry."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from batch.flags import FlagStyle
from batch.options import TableSetOptions


class VerdictOptions(TableSetOptions):
    image: str = Field(..., min_length=1, description="the image: its URI or its path in the archive")
    who: str = Field("cli", min_length=1, description="the person deciding, as the decisions log keeps it")
    comment: str | None = Field(None, description="why (kept with the decision)")


class DetectionReviewOptions(VerdictOptions):
    detection: int = Field(..., ge=0, description="the detection's index in the image (detection_index, as the "
                                                  "console and the exports show it)")


class ConfirmOptions(DetectionReviewOptions):
    label: str | None = Field(None, min_length=1, description="the label confirmed (default: the version's)")


class RejectOptions(DetectionReviewOptions):
    reason: Literal["not_animal", "wrong_box"] = Field("not_animal", description="not an animal, or a box that "
                                                                                 "does not fit one")


class RelabelOptions(DetectionReviewOptions):
    label: str = Field(..., min_length=1, description="the right label (the box is right)")


class EmptyOptions(VerdictOptions):
    pass


class AddBoxOptions(VerdictOptions):
    box: str = Field(..., description="x,y,w,h of the animal's box, normalised to the image (0..1)")
    label: str = Field(..., min_length=1, description="the animal's label")

    @field_validator("box")
    @classmethod
    def _four(cls, v: str) -> str:
        parts = v.split(",")
        try:
            if len(parts) != 4:
                raise ValueError
            [float(p) for p in parts]
        except ValueError:
            raise ValueError("give x,y,w,h as four numbers, e.g. 0.1,0.2,0.3,0.25") from None
        return v

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        x, y, w, h = (float(p) for p in self.box.split(","))
        return x, y, w, h


VERDICT_FLAGS = {"tables": FlagStyle(metavar="DST"), "image": FlagStyle(positional=True, metavar="IMAGE"),
                "detection": FlagStyle(metavar="N"), "box": FlagStyle(metavar="X,Y,W,H")}
