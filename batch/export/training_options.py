"""The options of the training-set formats (`trapline export --format yolo | coco-dataset | crops`): the split and
how the pictures are put in the set, declared apart from the exporters (batch/export/training_formats.py) so the
command line is built without the tables' readers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from batch.export.common_options import FormatOptions

SPLITS = ("train", "val", "test")


class TrainingSetOptions(FormatOptions):
    """What every training-set format takes: the split fractions, the seed that draws it, how pictures are placed."""

    train_fraction: float = Field(0.7, ge=0, le=1, description="share of the reviewed images in the train split "
                                                                 "(whole cameras: the shares are met as closely as "
                                                                 "whole cameras allow)")
    val_fraction: float = Field(0.15, ge=0, le=1, description="share of the reviewed images in the val split")
    test_fraction: float = Field(0.15, ge=0, le=1, description="share of the reviewed images in the test split")
    seed: int = Field(0, description="draws which camera goes to which split: the same seed, the same split")
    pictures: Literal["copy", "hardlink", "symlink"] = Field(
        "copy", description="how the original pictures are put in the set (hardlink falls back to a copy across "
                            "file systems; a picture on S3 is always copied)")

    @model_validator(mode="after")
    def _fractions(self) -> TrainingSetOptions:
        total = self.train_fraction + self.val_fraction + self.test_fraction
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"the train, val and test fractions must add up to 1 (they add up to {total:g})")
        if self.train_fraction <= 0:
            raise ValueError("--train-fraction must be above 0")
        return self

    def fractions(self) -> dict[str, float]:
        return {"train": self.train_fraction, "val": self.val_fraction, "test": self.test_fraction}


class CropsSetOptions(TrainingSetOptions):
    """`--format crops`: what every training-set format takes, and the margin around each box."""

    margin: float = Field(0.1, ge=0, le=1, description="extra room cut around each box, as a share of its width "
                                                        "and height on each side")
