"""Smoothing the labels of one image's or one sequence's detections, after MegaDetector's
`postprocessing/classification_postprocessing.py` (`_smooth_classifications_for_list_of_detections`), step by step:

1. "other"-type labels (animal, blank, no cv result, ...) become the dominant label when it has enough detections;
2. rare labels become the dominant one (700 cows and a deer are 701 cows), unless the dominant label is their
   ancestor (the next step goes the other way);
3. a parent taxon is pushed down to a present child (carnivore, fox, fox -> fox, fox, fox), preferring the deeper
   level and then the more frequent child;
4. within one family, a rare label becomes the dominant genus- or species-level label.

Only each detection's top label counts, and only where the box and the label are confident enough; each step
recounts. Labels are SpeciesNet's 7-field labels (a label's "name", matched against `other_category_names`, is its
common name); with labels of another form, steps 2-4's taxonomic rules are skipped as MegaDetector skips them without
descriptions. Held to MegaDetector's code by tests/unit/test_species_smoothing.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from model_store.core.species.taxonomy import ANIMAL, BLANK, UNKNOWN, VEHICLE

NON_TAXONOMIC = frozenset({BLANK, UNKNOWN, ANIMAL, VEHICLE})  # MegaDetector's non_taxonomic_prediction_strings
FAMILY_LEVEL = 5  # MegaDetector's level indices: class 3, order 4, family 5, genus 6, species 7, subspecies 8


class SmoothingConfig(BaseModel):
    """MegaDetector's `ClassificationSmoothingOptions`, its defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_detections_to_overwrite_secondary: int = Field(4, description="the dominant label needs this many "
                                                                      "detections to overwrite rare labels")
    max_detections_nondominant_class: int = Field(1, description="a label with more detections than this stays "
                                                                 "(<= 1: rare labels are never overwritten)")
    min_detections_to_overwrite_secondary_same_family: int = Field(2, description="... within one family (<= 0: "
                                                                                  "no within-family step)")
    max_detections_nondominant_class_same_family: int = Field(-1, description="a label with more detections than "
                                                                              "this stays, within one family")
    min_detections_to_overwrite_other: int = Field(2, description="the dominant label needs this many detections "
                                                                  "to overwrite 'other'-type labels")
    other_category_names: tuple[str, ...] = Field(("other", "unknown", "no cv result", "animal", "blank", "mammal"),
                                                  description="names of labels that are 'other'-type")
    classification_confidence_threshold: float = Field(0.5, ge=0, le=1, description="labels below this are ignored")
    detection_confidence_threshold: float = Field(0.15, ge=0, le=1, description="boxes below this are ignored")
    propagate_classifications_through_taxonomy: bool = Field(True, description="push parents down to a child")
    taxonomy_propagation_level_weight: float = 1.0
    taxonomy_propagation_count_weight: float = 0.01
    add_pre_smoothing_description: bool = Field(True, description="keep what the labels were before, per image")
    detection_category_names_to_smooth: tuple[str, ...] | None = Field(("animal",), description="detector labels "
                                                                                                "whose boxes count")


@dataclass
class Item:
    """One detection while it is smoothed: its box's label and score, its top label (None: unclassified)."""

    category: str
    conf: float
    label: str | None
    score: float = 0.0


def name_of(label: str) -> str:
    parts = label.split(";")
    return parts[6] if len(parts) == 7 else label


def clean(label: str) -> str:
    """MegaDetector's cleaned description: the 5 taxon fields, outer separators stripped, lower case."""
    return ";".join(label.split(";")[1:6]).strip(";").lower()


def level_of(label: str) -> int:
    """MegaDetector's `taxonomy_level_index`: 0 non-taxonomic, 3 class ... 7 species, 8 subspecies."""
    parts = label.split(";")
    if label in NON_TAXONOMIC or len(parts) != 7 or not parts[1]:
        return 0
    for i, level in ((2, 3), (3, 4), (4, 5), (5, 6)):
        if not parts[i]:
            return level
    return 7 if " " not in parts[5] else 8


def relevant(item: Item, config: SmoothingConfig) -> bool:
    names = config.detection_category_names_to_smooth
    return item.label is not None and item.conf >= config.detection_confidence_threshold and (
        names is None or item.category in names)


def count(items: Sequence[Item], config: SmoothingConfig) -> dict[str, int]:
    """Confident top labels by count, most first (ties: first seen first)."""
    counts: dict[str, int] = {}
    for it in items:
        if relevant(it, config) and it.score >= config.classification_confidence_threshold:
            counts[it.label] = counts.get(it.label, 0) + 1  # type: ignore[index]
    return dict(sorted(counts.items(), key=lambda kv: kv[1], reverse=True))


def description(items: Sequence[Item], config: SmoothingConfig) -> str:
    """What one image held before smoothing, e.g. 'red fox (3), animal (1)' (MegaDetector's
    `pre_smoothing_description`)."""
    return ", ".join(f"{name_of(label) or 'undefined category'} ({n})" for label, n in count(items, config).items())


def _confident(items: Sequence[Item], config: SmoothingConfig) -> list[Item]:
    return [it for it in items if relevant(it, config) and it.score >= config.classification_confidence_threshold]


def smooth(items: Sequence[Item], config: SmoothingConfig = SmoothingConfig()) -> dict[str, int]:  # noqa: B008
    """Smooth the top labels of one image's (or one sequence's) detections in place; the changes by step."""
    changes = {"other": 0, "dominant": 0, "taxonomic": 0, "family": 0}
    counts = count(items, config)
    if len(counts) <= 1:
        return changes
    others = {label for label in counts if name_of(label) in config.other_category_names}
    taxonomic = all(x.count(";") == 6 for x in counts)
    keys = list(counts)
    if keys[0] in others and keys[1] not in others and counts[keys[0]] == counts[keys[1]]:
        keys[0], keys[1] = keys[1], keys[0]
    top, top_n = keys[0], counts[keys[0]]
    if top_n >= config.min_detections_to_overwrite_other and top not in others:
        for it in _confident(items, config):
            if it.label in others:
                it.label = top
                changes["other"] += 1

    counts = count(items, config)
    top, top_n = next(iter(counts.items()))
    rules = taxonomic and len(counts) > 1
    if top not in others and top_n >= config.min_detections_to_overwrite_secondary:
        for it in _confident(items, config):
            if it.label == top:
                continue
            if rules:
                mine = clean(it.label)  # type: ignore[arg-type]
                if not mine or clean(top) in mine:
                    continue  # "animal", or a child of the dominant label: the next step decides
            if top_n > counts[it.label] and counts[it.label] <= config.max_detections_nondominant_class:
                it.label = top
                changes["dominant"] += 1

    counts = count(items, config)
    rules = taxonomic and len(counts) > 1
    if rules and config.propagate_classifications_through_taxonomy:
        for it in _confident(items, config):
            mine = clean(it.label)  # type: ignore[arg-type]
            if not mine:
                continue
            scores: dict[str, float] = {}
            for child in counts:
                theirs = clean(child)
                if child == it.label or not theirs or theirs == mine or mine not in theirs:
                    continue
                scores[child] = (level_of(child) * config.taxonomy_propagation_level_weight
                                 + counts[child] * config.taxonomy_propagation_count_weight)
            if scores:
                it.label = next(iter(sorted(scores.items(), key=lambda kv: kv[1], reverse=True)))[0]
                changes["taxonomic"] += 1

    counts = count(items, config)
    top, top_n = next(iter(counts.items()))
    if rules and config.min_detections_to_overwrite_secondary_same_family > 0 and top not in others \
            and level_of(top) > FAMILY_LEVEL and top_n >= config.min_detections_to_overwrite_secondary_same_family:
        top_parts = top.split(";")
        for it in _confident(items, config):
            if it.label == top:
                continue
            n = counts[it.label]  # type: ignore[index]
            if n > config.max_detections_nondominant_class_same_family or n == top_n:
                continue
            parts = it.label.split(";")  # type: ignore[union-attr]
            if not parts[3] or not top_parts[3] or parts[3] != top_parts[3]:
                continue
            if parts[4] == top_parts[4] and level_of(it.label) > level_of(top):  # type: ignore[arg-type]
                continue
            it.label = top
            changes["family"] += 1
    return changes
