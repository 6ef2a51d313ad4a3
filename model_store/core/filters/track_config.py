"""The tracker's typed config (model_store/core/filters/tracking.py): every knob of its gates, costs and
stitching, with defaults fitted across benchmarks/tracking_kinds.py's kinds of night (NOTES.md §11)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrackConfig(BaseModel):
    """The tracker's knobs. The defaults serve light-trap sheets (a frame every 20 s, insects sitting for
    minutes to hours) and camera-trap bursts (~1 s apart, animals walking) alike: they were fitted across
    benchmarks/tracking_kinds.py's kinds of night and burst on a seed the benchmark does not report on
    (`python -m benchmarks.tracking_tune`; BENCHMARKS.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_gap_s: float = Field(600.0, gt=0.0, description="a track not seen for longer than this many seconds "
                                                        "ends; a later detection starts a new track")
    max_gap_frames: int = Field(5, ge=0, description="a track may be missed in at most this many consecutive "
                                                      "frames (of this camera, with a kept detection) and still "
                                                      "re-link (0: consecutive frames only)")
    iou_weight: float = Field(1.0, ge=0.0, description="weight of 1 - IoU in the link cost")
    size_weight: float = Field(0.5, ge=0.0, description="weight of 1 - (smaller area / larger area)")
    distance_weight: float = Field(1.0, ge=0.0, description="weight of the centre distance, in box sizes, "
                                                            "divided by max_centre_distance")
    appearance_weight: float = Field(1.5, ge=0.0, description="weight of the appearance (cosine) distance; "
                                                              "ignored when there is no appearance")
    max_cost: float = Field(0.55, gt=0.0, description="the cost of starting a new track: a pair links only when "
                                                      "its weighted mean cost is below this, and the assignment "
                                                      "weighs each link's saving against starting a track, so a "
                                                      "poor link loses to a new track rather than being forced")
    min_iou: float = Field(0.0, ge=0.0, lt=1.0, description="a pair with a lower IoU never links (0: no IoU gate; "
                                                            "moving animals often do not overlap frame to frame)")
    max_centre_distance: float = Field(1.5, gt=0.0, description="a pair whose centres are further apart than this "
                                                                "many box sizes (the mean side) never links, "
                                                                "however the track moved before")
    sit_reach: float = Field(1.0, gt=0.0, description="the centre-distance gate, in box sizes, of a track that "
                                                      "has sat still: an insect that sits moves a few pixels, so "
                                                      "one that arrives further off is another insect")
    wander_gain: float = Field(5.0, ge=0.0, description="the gate widens by this many times the track's own "
                                                        "wander (how far its last steps fell from where its "
                                                        "motion said, in box sizes), up to max_centre_distance")
    first_reach: float = Field(1.4, gt=0.0, description="the gate, in box sizes, of a track seen once (its "
                                                        "motion is not known yet)")
    gap_distance_growth: float = Field(1.0, ge=0.0, description="for a track missed in g frames the centre-"
                                                                "distance gate is max_centre_distance x "
                                                                "sqrt(1 + this x g): it may have moved on")
    min_size_ratio: float = Field(0.33, gt=0.0, le=1.0, description="a pair whose smaller box area is less than "
                                                                    "this fraction of the larger never links")
    sit_size_ratio: float = Field(0.7, gt=0.0, le=1.0, description="the same gate for a track that sits (moves "
                                                                    "less than sit_speed), against its mean area: "
                                                                    "an insect that sits keeps its size, so a box "
                                                                    "of another size on its spot is another insect")
    sit_speed: float = Field(0.1, ge=0.0, description="a track moving less than this many box sizes per frame "
                                                      "(its velocity over its own frame interval) sits")
    max_appearance_distance: float = Field(0.5, gt=0.0, le=2.0, description="a pair whose appearance distance "
                                                                             "(1 - cosine) is above this never "
                                                                             "links (only where the appearance "
                                                                             "separates, see min_separation)")
    min_separation: float = Field(0.5, ge=0.0, le=1.0, description="appearance counts only as far as it tells "
                                                                   "the camera's animals apart: its weight is "
                                                                   "scaled by the separation measured on the "
                                                                   "camera's own detections (0: alike, 1: always "
                                                                   "apart), and it gates only at or above this")
    appearance: Literal["colour", "none"] = Field("colour", description="colour: use the appearance vectors "
                                                                        "given (the snips' colour/texture "
                                                                        "descriptors or an identifier's); none: "
                                                                        "geometry only")
    appearance_memory: float = Field(0.7, ge=0.0, lt=1.0, description="a track's appearance is a running mean: "
                                                                      "this share of the old one is kept at "
                                                                      "each link")
    gap_penalty_hits: float = Field(100.0, gt=0.0, description="gap_penalty is halved for a track seen this many "
                                                             "times more than once, a third for twice as many, "
                                                             "... (a long sitter that flew off is likely back)")
    predict_motion: bool = Field(True, description="also compare with the box the track's velocity predicts")
    velocity_memory: float = Field(0.5, ge=0.0, lt=1.0, description="a track's velocity is a running mean: this "
                                                                    "share of the old one is kept at each link (an "
                                                                    "alpha-beta filter, the steady state of a "
                                                                    "constant-velocity Kalman filter)")
    herd_min_walkers: int = Field(3, ge=0, description="a segment (a burst) at least this many of whose tracks of "
                                                      "three or more boxes walk, at least half of them, two thirds "
                                                      "of those one way at about one pace, is a herd: it is linked "
                                                      "again with that pace as a second guess of where a track seen "
                                                      "once went (track_herd.py; 0: never)")
    gap_penalty: float = Field(0.08, ge=0.0, description="cost added per frame a track was missed, so the most "
                                                         "recently seen of two similar tracks wins")
    fill_max_frames: int = Field(2, ge=0, description="after the frame-by-frame pass, a track of at most this many "
                                                       "detections that lies inside another track's gap (that track "
                                                       "seen right before and right after it, on its spot) is given "
                                                       "back to it: a box its own track refused (0: never)")
    fill_reach: float = Field(0.3, gt=0.0, description="... when its boxes are within this many box sizes of the "
                                                       "track's boxes on both sides")
    chain_size_ratio: float = Field(0.7, gt=0.0, le=1.0, description="three short tracks (at most "
                                                                     "fill_max_frames boxes each) on one steady "
                                                                     "pace, one after another, are one walker the "
                                                                     "detector kept losing (track_gaps.py "
                                                                     "fill_chains) only when each one's box is "
                                                                     "within this area ratio of the next's: a "
                                                                     "walker keeps its size")
    stitch_gap_frames: int = Field(10, ge=0, description="after the frame-by-frame pass, a track that ended may be "
                                                          "joined to one that starts at most this many frames "
                                                          "later, when this camera's own evidence says one animal "
                                                          "(an insect that flew off and came back; "
                                                          "model_store/core/filters/track_stitching.py; 0: no "
                                                          "stitching)")
    stitch_min_frames: int = Field(2, ge=1, description="both tracks of a stitch have at least this many detections")
    stitch_size_ratio: float = Field(0.9, gt=0.0, le=1.0, description="a stitch's two tracks' mean box areas are "
                                                                      "within this ratio")
    stitch_reach: float = Field(2.5, gt=0.0, description="... and the second starts within this many box sizes "
                                                         "of where the first ended")
    stitch_far_frames: int = Field(2, ge=1, description="two tracks of at least this many detections each may "
                                                         "be stitched wherever the second starts")
    stitch_min_pairs: int = Field(20, ge=2, description="a camera stitches only when it has at least this many "
                                                        "certainly-different pairs (two tracks seen in one frame) "
                                                        "to calibrate on (and five tracks long enough to halve)")
    stitch_floor_quantile: float = Field(0.02, ge=0.0, le=1.0, description="a stitch's look distance is at most "
                                                                           "stitch_margin times this quantile of "
                                                                           "the camera's different pairs' "
                                                                           "distances ...")
    stitch_margin: float = Field(0.5, ge=0.0, le=1.0, description="... (far below what two animals of the camera "
                                                                  "show, in absolute terms)")
    stitch_min_probability: float = Field(0.9, gt=0.0, le=1.0, description="a stitch's calibrated probability of "
                                                                           "one animal, discounted per missed "
                                                                           "frame, is at least this")
    stitch_gap_cost: float = Field(0.005, ge=0.0, description="the discount: the probability times exp(-this x the "
                                                             "frames missed between the two tracks)")
    fold: bool = Field(True, description="after the frame-by-frame pass, give a track whose boxes lie inside or on "
                                         "another track's box of their frames (an animal boxed twice: a head, a "
                                         "duplicate) to that track, with the evidence (model_store/core/filters/"
                                         "track_folds.py)")
    fold_set_aside: float = Field(0.5, ge=0.0, le=1.0, description="before the frame-by-frame pass, of two boxes of "
                                                                   "one frame that look alike and overlap at an "
                                                                   "IoU of at least this, the second (the smaller, "
                                                                   "else the less confident) is set aside: linked "
                                                                   "after the other boxes and folded back like any "
                                                                   "piece, it cannot take the animal's track (0: "
                                                                   "never; model_store/core/filters/"
                                                                   "track_seconds.py)")
    fold_inside: float = Field(0.6, gt=0.0, le=1.0, description="a box is inside or on another when at least this "
                                                                "share of the smaller one's area is in the larger")
    fold_min_share: float = Field(0.8, gt=0.0, le=1.0, description="... and a track is folded only when at least "
                                                                   "this share of its frames has its box inside or "
                                                                   "on the other track's (one other track only)")
    fold_spread: float = Field(0.3, gt=0.0, description="... at a steady place of the other's box: the spread of "
                                                        "its centre's offset, in the other's box sizes, is at most "
                                                        "this")
    fold_hand_over: int = Field(2, ge=0, description="a track that ends within this many frames of another's start, "
                                                      "their boxes inside or on each other in every frame they "
                                                      "share, is joined to it: a duplicate box took the animal's "
                                                      "track for a frame (0: never)")
    fold_turn_share: float = Field(0.7, ge=0.0, le=1.0, description="... or later, when they have a box in at most "
                                                                   "this share of the frames they overlap: two "
                                                                   "tracks taking turns on one animal's boxes (two "
                                                                   "animals side by side are both seen in nearly "
                                                                   "every frame)")
    fold_move: float = Field(1.0, ge=0.0, description="a fold is strong when the other track moved at least this "
                                                      "many box sizes while the piece rode along")
    fold_sit_density: float = Field(0.55, ge=0.0, le=1.0, description="where it did not, the piece is folded (a weak "
                                                                     "fold, to the review queue) only when it is "
                                                                     "seen in at most this share of the other "
                                                                     "track's frames around it: an animal that sits "
                                                                     "is detected in nearly every frame, a part box "
                                                                     "comes and goes")
    fold_look: float = Field(0.2, ge=0.0, le=2.0, description="where the boxes have an appearance, a piece (or a "
                                                             "hand-over) is folded only when it looks like the "
                                                             "other track (the mean appearance distance, 1 - cosine, "
                                                             "of their boxes in the frames they nest) at most this "
                                                             "much: an animal's second box shows the same animal, a "
                                                             "neighbour's box another")
    fold_part_area: float = Field(0.5, gt=0.0, le=1.0, description="a piece whose mean box is over this share of "
                                                                   "the other's area could itself be a whole "
                                                                   "animal: without an appearance it is folded "
                                                                   "only on a strong fold (it rode along)")
    side_density: float = Field(0.6, ge=0.0, le=1.0, description="a track that keeps beside another track's box "
                                                                 "(not inside it), of about its size, at a kept "
                                                                 "offset, alike, is folded into it (one animal "
                                                                 "boxed as two boxes side by side: a head and a "
                                                                 "body; issue 84) only when it is seen in at most "
                                                                 "this share of the other's frames around it: two "
                                                                 "animals side by side are both seen in nearly "
                                                                 "every frame, a second box comes and goes (0: "
                                                                 "never; model_store/core/filters/track_sides.py)")
    side_gap: float = Field(0.3, ge=0.0, description="... beside: its box within this many box sides of the other's")
    side_area: float = Field(0.4, gt=0.0, le=1.0, description="... about its size: its mean box at least this share "
                                                             "of the other's area (a young beside its mother is "
                                                             "smaller)")
    static_min_frames: int = Field(10, ge=0, description="a track is flagged static (a leaf, a mark on the sheet: "
                                                         "left out of counts) when at least this many of its "
                                                         "boxes ... (MegaDetector's repeat-detection rule's "
                                                         "min_images; 0: never flag)")
    static_iou: float = Field(0.85, gt=0.0, le=1.0, description="... lie at an IoU of at least this with the "
                                                                "track's median box (the rule's iou) ...")
    static_share: float = Field(0.95, gt=0.0, le=1.0, description="... and those are at least this share of its "
                                                                  "boxes: an insect that sits jitters and "
                                                                  "shuffles, a fixed thing does not")
    static_burst_share: float = Field(0.7, ge=0.0, le=1.0, description="in a run of frames (a burst) shorter "
                                                                       "than static_min_frames, a track is judged "
                                                                       "on at least this share of the run's "
                                                                       "frames instead (a leaf the detector "
                                                                       "misses in 3 of a burst's 10 frames is "
                                                                       "still a leaf; 0: never in short runs)")
    static_run_share: float = Field(0.5, ge=0.0, le=1.0, description="... and in any run of frames, a track is "
                                                                   "flagged only when it has a box in at least "
                                                                   "this share of the run's frames: a leaf or a "
                                                                   "mark on the sheet is there all night, an "
                                                                   "insect that sits still for an hour is not "
                                                                   "(0: no such bar)")
    static_min_burst: int = Field(5, ge=1, description="... and at least this many boxes: a still animal in a "
                                                       "burst of three frames says nothing")
    cross_label: bool = Field(True, description="whether detections of different labels may link (a classifier "
                                                 "may call one moth two names across frames)")
    label_penalty: float = Field(0.15, ge=0.0, description="cost added when a linked pair has different labels")
    min_frames: int = Field(3, ge=1, description="a track counts as an animal (confirmed_tracks) when it has at "
                                                 "least this many detections ...")
    confirm_score: float = Field(0.6, ge=0.0, le=1.0, description="... or one detection at least this confident")

    @model_validator(mode="after")
    def _some_weight(self) -> TrackConfig:
        if self.iou_weight + self.size_weight + self.distance_weight + self.appearance_weight <= 0:
            raise ValueError("iou_weight, size_weight, distance_weight and appearance_weight are all 0: "
                             "at least one must be positive")
        return self

