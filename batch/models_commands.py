"""`trapline models list | show | publish | inspect | quantize | promote | rollback | verify`: their entries of the
command registry (batch/commands.py lists them) and one pydantic options model each, so their flags, help and
checks come from one definition, like every other command's.

Here in batch/ rather than beside the store: an options model is a `CommandOptions` (unknown names refused, every
error naming its flag), its paths are `Location`s and its flags' looks are `FlagStyle`s, all of the registry's room;
the model store sits below batch/ and may not import it, and a second base class in model_store would be a second
idiom. The work stays with the store: the runners (model_store/store/cli.py) take these options by attribute and
never import batch/. Light: every command line builds the registry (tests/unit/test_cli_startup.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from batch.command import Command, later, printed
from batch.flags import FlagStyle
from batch.options import TABLES_HELP, CommandOptions, Location, StoreRoot, TablesLocation
from batch.postprocessing.thresholds_rule import MIN_CAMERA, MIN_LABEL, TARGET
from batch.train.architectures import ARCHITECTURES
from ground.env import STORE_HELP
from model_store.core.refs import DEFAULT_ALIAS
from model_store.store.derive import PRESETS
from model_store.store.quantize_report import Gate

Architecture = Literal[tuple(sorted(ARCHITECTURES))]  # type: ignore[valid-type]  # what models train can build
Preset = Literal[tuple(sorted(PRESETS))]  # type: ignore[valid-type]  # the known families, as --preset's choices
_GATE = Gate()  # the quantize gate's defaults, stated once (model_store/store/quantize_report.py)
GATE_MIN_BOXES = 10  # batch/review/promote_gate.py MIN_BOXES (not imported: the registry stays light)


class StoreOptions(CommandOptions):
    store: StoreRoot = None


class ListOptions(StoreOptions):
    pass


class ShowOptions(StoreOptions):
    ref: str = Field(..., description="NAME, NAME:VERSION or NAME@ALIAS (a bare NAME means @production)")
    tables: Location | None = Field(None, description=TABLES_HELP)  # the card adds the version's accuracy there
    filters_hash: str | None = Field(None, description="with --tables: the result set (default: the newest)")


class AccuracyOptions(StoreOptions):
    ref: str = Field(..., description="NAME:VERSION or NAME@ALIAS (NAME: its newest version in the tables)")
    tables: TablesLocation
    filters_hash: str | None = Field(None, description="the result set (default: the version's newest)")


class ThresholdsOptions(AccuracyOptions):
    target_precision: float = Field(TARGET, gt=0.0, le=1.0, description="the precision each label's threshold "
                                                                          "must reach on the reviewed detections")
    min_label_evidence: int = Field(MIN_LABEL, ge=1, description="reviewed detections of a label needed to propose "
                                                                 "a threshold for it")
    min_camera_evidence: int = Field(MIN_CAMERA, ge=1, description="reviewed detections of a label at one camera "
                                                                   "for that camera to get its own threshold")
    publish: bool = Field(False, description="publish the thresholds as a new config-only version (same weights)")
    version: str | None = Field(None, description="with --publish: the new version's name")

    @model_validator(mode="after")
    def _version_with_publish(self) -> ThresholdsOptions:
        if self.publish and not self.version:
            raise ValueError("--publish needs --version, the new version's name")
        if self.version and not self.publish:
            raise ValueError("--version names the version --publish makes: give --publish too")
        return self


class TrainOptions(StoreOptions):
    ref: str = Field(..., description="NAME:VERSION or NAME@ALIAS of a classifier published with its trainable "
                                      "weights (trainable.pt beside its ONNX)")
    crops: Location = Field(..., description="a `trapline export --format crops` directory (its manifest.json and "
                                             "crops/{train,val,test}/LABEL/): the train split trains, the test "
                                             "split measures")
    version: str = Field(..., description="the new version's name (immutable once published)")
    epochs: int = Field(5, ge=1, le=1000, description="passes over the train split; a checkpoint after each")
    workers: int = Field(1, ge=1, le=256, description="Ray Train workers (data-parallel: each takes its share of "
                                                      "every batch)")
    cpus_per_worker: float = Field(1.0, gt=0, le=256, description="CPUs each worker reserves (fractions share a "
                                                                  "core, e.g. 0.5)")
    gpu: bool = Field(False, description="one GPU per worker (else CPU)")
    batch_size: int = Field(64, ge=1, le=65536, description="crops per step, over all workers")
    lr: float = Field(1e-3, gt=0, lt=1, description="AdamW learning rate")
    seed: int = Field(0, ge=0, description="the shuffling and augmentation seed")
    max_failures: int = Field(2, ge=0, le=100, description="worker failures to recover from (each restarts the "
                                                           "workers from the last epoch's checkpoint)")
    address: str | None = Field(None, description="Ray cluster address")
    checkpoints: Location | None = Field(None, description="where Ray Train keeps the run's checkpoints (RunConfig "
                                                           "storage_path; on a cluster, storage every node reaches, "
                                                           "e.g. s3://); deleted once the version is published")
    # where the run's record goes (its _runs/: batch/train/record.py); a job without it: the crops' own tables
    tables: Location | None = Field(None, description=TABLES_HELP)


class VerifyOptions(StoreOptions):
    ref: str = Field(..., description="NAME:VERSION or NAME@ALIAS")


class PromoteOptions(StoreOptions):
    ref: str = Field(..., description="NAME:VERSION")
    alias: str = Field(DEFAULT_ALIAS, description="the alias to point at it")
    tables: Location | None = Field(None, description=TABLES_HELP)  # the gate's evidence: people's reviews there
    force: bool = Field(False, description="promote a candidate the gate finds worse beyond the intervals (audited)")
    reason: str | None = Field(None, description="why (kept in the audit log with a forced promote)")
    seed: int = Field(0, description="the gate: the training-set split's seed whose test cameras are held out")
    min_boxes: int = Field(GATE_MIN_BOXES, ge=1, description="the gate: verified held-out boxes needed to judge")


class RollbackOptions(StoreOptions):
    name: str = Field(..., description="the model's name")
    alias: str = Field(DEFAULT_ALIAS, description="the alias to return to the version it pointed at before")


class DerivedOptions(CommandOptions):
    """What publish and inspect derive a config from: the weights, a family's preset, then a config's fields."""

    config: Location | None = Field(None, description="config.json for this version, whole or only the fields to "
                                                      "override (weights.sha256 is filled in); optional for ONNX "
                                                      "exports that carry their class names")
    preset: Preset | None = Field(None, description="a known model family's configuration (applied before --config)")


class InspectOptions(DerivedOptions):
    weights: Location = Field(..., description="an ONNX file")


class PublishOptions(DerivedOptions, StoreOptions):
    weights: Location | None = Field(None, description="weights file (e.g. model.onnx); none for a keypoints "
                                                       "identifier (its --config is the model)")
    name: str = Field(..., description="the model's name")
    version: str = Field(..., description="the new version (immutable once published)")
    dry_run: bool = Field(False, description="print the config that would be published and stop")
    card: Location | None = Field(None, description="README.md model card")
    taxonomy: Location | None = Field(None, description="a classifier's SpeciesNet taxonomy file (7-field labels, "
                                                        "one a line), published beside it for the species ensemble")
    geofence: Location | None = Field(None, description="a classifier's SpeciesNet geofence file (JSON allow/block "
                                                        "rules); needs --taxonomy")
    taxa_list: list[str] | None = Field(None, description="a project's taxa list (CSV latin,common[,threshold]) "
                                                          "published beside the classifier under NAME, for "
                                                          "species_ensemble's taxa_list; repeatable; needs --taxonomy")
    trainable: Location | None = Field(None, description="a classifier's torch weights (a state_dict, as torch.save "
                                                         "writes it) published beside its ONNX, so that `trapline "
                                                         "models train` can fine-tune it; needs --architecture")
    architecture: Architecture | None = Field(None, description="with --trainable: the network those weights fit")

    @model_validator(mode="after")
    def _trainable_with_architecture(self) -> PublishOptions:
        if (self.trainable is None) != (self.architecture is None):
            raise ValueError("--trainable and --architecture go together: the weights and the network they fit")
        return self


class QuantizeOptions(StoreOptions):
    ref: str = Field(..., description="NAME:VERSION or NAME@ALIAS of an ONNX model to quantize")
    calibrate: Location = Field(..., description="directory of representative images (searched recursively); a few "
                                                 "hundred from the cameras the model serves, most of them with "
                                                 "objects in them")
    version: str = Field(..., description="version to publish the int8 model as")
    holdout_fraction: float = Field(0.3, description="share of the images kept out of calibration to compare the "
                                                     "versions on")
    min_recall: float = Field(_GATE.min_recall, description="refuse when the int8 version finds less of the "
                                                            "parent's boxes, overall or in a judged class")
    min_precision: float = Field(_GATE.min_precision, description="refuse when fewer of the int8 version's boxes "
                                                                  "are the parent's, overall or in a judged class")
    min_boxes: int = Field(_GATE.min_boxes, description="parent boxes on the held-out images needed to judge at "
                                                        "all; below it nothing is published without --force")
    min_class_boxes: int = Field(_GATE.min_class_boxes, description="boxes of one class from which that class is "
                                                                    "judged on its own")
    min_score: float = Field(_GATE.min_score, description="boxes scoring below this count on neither side")
    min_match: float | None = Field(None, description="replaced by --min-recall and --min-precision (refused, "
                                                      "saying so)")
    force: bool = Field(False, description="publish even when the int8 version is below the gate or there are too "
                                           "few boxes to judge")


_REF = FlagStyle(positional=True, metavar="REF")
MODELS_FLAGS = {"ref": _REF, "weights": FlagStyle(positional=True, metavar="WEIGHTS"),
                "taxa_list": FlagStyle(repeatable=True, metavar="NAME=FILE"), "calibrate": FlagStyle(metavar="DIR"),
                "min_match": FlagStyle(hidden=True), "crops": FlagStyle(metavar="DIR"),
                "address": FlagStyle(default_text="$RAY_ADDRESS, else a local Ray"),
                "checkpoints": FlagStyle(metavar="DIR", default_text="~/.cache/trapline/train")}
ROLLBACK_FLAGS = {**MODELS_FLAGS, "name": FlagStyle(positional=True, metavar="NAME")}


def _models(name: str, help: str, options: type[BaseModel], runner: str, **kw: Any) -> Command:
    kw.setdefault("styles", MODELS_FLAGS)
    kw.setdefault("job", False)
    return Command(name, help, options, later(runner if ":" in runner else "model_store.store.cli:" + runner),
                   printed, to_json=lambda r: r.json(), **kw)


_PUBLISH = "trapline models publish"
MODELS_COMMANDS = (
    _models("models list", "list models, versions and aliases", ListOptions, "list_models",
            example="trapline models list --store s3://traps/models"),
    _models("models show", "show one version's config, aliases and model card (--tables: and its accuracy)",
            ShowOptions, "batch.postprocessing.review_cli:show",
            example="trapline models show megadetector@production --tables ./detections"),
    _models("models accuracy", "a version's precision, recall, F1 and confusion table from people's decisions",
            AccuracyOptions, "batch.postprocessing.review_cli:accuracy",
            description="Measure NAME:VERSION against what people decided about its detections in --tables "
                        "(`trapline review ...`, the console's Review page): a confirmed detection is a true "
                        "positive, a relabelled one a true positive off the confusion table's diagonal, a rejected "
                        "one or one in an image marked empty a false positive, an added box a false negative. "
                        "Only over what people looked at, saying how much that is; overall, per label and per "
                        "camera, each rate with its Wilson 95 % interval and its evidence (k/n).",
            example="trapline models accuracy megadetector:5 --tables ./detections"),
    _models("models thresholds", "per-label score thresholds reaching a target precision on people's reviews "
            "(--publish: as a new config-only version)", ThresholdsOptions,
            "batch.postprocessing.thresholds_cli:thresholds",
            description="Propose, per label of NAME:VERSION, the lowest score at which its detections people "
                        "reviewed in --tables reach --target-precision (a confirmed detection is right; a "
                        "relabelled or rejected one, or one in an image marked empty, wrong; a box people added, or "
                        "one below the threshold, a miss), with the recall kept there, each with its Wilson 95 % "
                        "interval and its evidence (k/n). A label needs --min-label-evidence reviewed detections; a "
                        "camera with --min-camera-evidence of a label gets its own threshold where it reaches the "
                        "target, else the label's applies. A label that cannot reach the target gets none, and the "
                        "line says why. --publish --version V publishes NAME:V: the same weights, the thresholds "
                        "as its label_score filter, and thresholds.json naming the decisions, tables, source and "
                        "target. Promote it to serve it; `trapline postprocess --filter label_score --config-from "
                        "NAME:V` applies it to the tables without inference.",
            examples=("trapline models thresholds megadetector:5 --tables ./detections",
                      "trapline models thresholds megadetector:5 --tables ./detections --target-precision 0.9 "
                      "--publish --version 5-t90")),
    _models("models train", "fine-tune a classifier on a crops export with Ray Train and publish the result",
            TrainOptions, "batch.train.run:train",
            description="Fine-tune NAME:VERSION, a classifier published with its trainable weights, on the train "
                        "split of a `trapline export --format crops` set, as a Ray Train TorchTrainer job on a "
                        "private local Ray (or the cluster --address names): --workers data-parallel workers of "
                        "--cpus-per-worker CPUs (or one GPU each with --gpu), a checkpoint after every epoch, and a "
                        "killed worker restarting the workers from the last checkpoint (--max-failures times). The "
                        "result is published as NAME:--version: its ONNX export, its own trainable weights, and "
                        "training.json and a model card naming the set's manifest (its sha256, decisions, tables, "
                        "versions) and the held-out top-1 on the set's test split, with the source version's on the "
                        "same crops (Wilson 95 % intervals). No alias moves: promote it to serve it. A version "
                        "published as ONNX only has no trainable weights: exit 2, saying so. --tables records the "
                        "run (epoch k of n, loss, validation top-1) in those tables' _runs/; as a job (`trapline "
                        "jobs submit train`, POST /v1/jobs kind `train`) it runs on the service's Ray "
                        "and records into the tables the crops came from unless --tables names others.",
            examples=("trapline models train species:3 --crops ./set --version 4",
                      "trapline models train species:3 --crops ./set --version 4 --workers 2 --cpus-per-worker 0.5 "
                      "--epochs 10",
                      "trapline jobs submit train species:3 --crops ./set --version 4 --cpus-per-worker 0.5"),
            job=True, job_kind="train", check=later("batch.train.run:check_options"),
            fill=later("batch.train.record:record_tables")),
    _models("models publish", "publish new weights as an immutable version", PublishOptions, "publish",
            description="Publish weights as NAME:VERSION. An ONNX file is inspected first: an Ultralytics "
                        "(YOLOv8, YOLO11, ...) or YOLOv5 export needs no config (labels, input size, stride and "
                        "layout are read from the file); --preset and then --config override what was derived, "
                        "and a config that contradicts the graph is refused.",
            examples=(f"{_PUBLISH} yolov8n.onnx --name yolov8n --version 1",
                      f"{_PUBLISH} md_v5a.onnx --name megadetector --version 5a --preset megadetector-v5",
                      f"{_PUBLISH} model.onnx --name moths --version 3 --config overrides.json",
                      f"{_PUBLISH} model.onnx --name demo-species --version 2 --config config.json --trainable "
                      "weights.pt --architecture demo-tiny-classifier")),
    _models("models inspect", "show what an ONNX file says about itself and the config publish would derive "
            "from it", InspectOptions, "inspect",
            description="Read an ONNX detector's inputs, outputs and producer metadata (Ultralytics: task, "
                        "end2end, head, names, imgsz, stride) and print the output layout, labels and "
                        "preprocessing that `trapline models publish` would choose, and why; or the one line "
                        "saying which config keys to give. Nothing is written.",
            examples=("trapline models inspect yolo26n.onnx",
                      "trapline models inspect detr.onnx --config overrides.json")),
    _models("models quantize", "publish an int8 version beside its parent, if it keeps the parent's boxes",
            QuantizeOptions, "quantize",
            description="Quantize NAME:VERSION to int8 (ONNX Runtime static quantization: QDQ, per-channel int8 "
                        "weights) and publish it as NAME:V2 beside its parent, with the parent's config. Images in "
                        "DIR are split deterministically: activation ranges are calibrated on most of them, and on "
                        "the held-out rest both versions run through the detector. The parent's boxes are the "
                        "truth: the report gives the int8 version's recall and precision of them (same class, IoU "
                        ">= 0.5), per class and overall, mAP@0.5 with the parent as truth, |Δscore| of matched "
                        "boxes (reported, not judged) and ms/image on one thread; it goes into the new version's "
                        "model card. Below --min-recall or --min-precision (overall, or for a class with "
                        "--min-class-boxes boxes) nothing is published (exit 2) unless --force; with fewer than "
                        "--min-boxes of the parent's boxes on the held-out images the command says there are too "
                        "few to judge and publishes nothing unless --force. No alias is moved (promote the int8 "
                        "version to serve it), but the implicit `latest` is the highest version name, which the "
                        "new one may be.",
            examples=("trapline models quantize demo-detector:2 --calibrate samples/ --version 2-int8",
                      "trapline models quantize yolov8n:1 --calibrate /data/traps/sample --version 1-int8 "
                      "--min-recall 0.95")),
    # promote and rollback: the store's runners, each outcome in the audit log beside the store (serve/audit.py)
    _models("models promote", "point an alias at a version (verifies it first)", PromoteOptions,
            "batch.promote_gate_cli:promote",
            description="Point --alias at NAME:VERSION (verified first). With --tables, the gate first compares it "
                        "with the alias's current version on people's verified held-out data (the test cameras of "
                        "the training-set split by --seed), both versions run over the same pictures; a candidate "
                        "worse beyond the Wilson 95 % intervals is refused (exit 2) unless --force (audited, with "
                        "--reason). The comparison is printed either way. docs/guide/review.md, \"The gate before "
                        "promote\".",
            examples=("trapline models promote megadetector:5 --alias production",
                      "trapline models promote demo-detector:2 --tables ./detections",
                      "trapline models promote demo-detector:3 --tables ./detections --force --reason 'night fix'")),
    _models("models rollback", "return an alias to the version it pointed at before", RollbackOptions,
            "serve.people_cli:rollback", styles=ROLLBACK_FLAGS,
            example="trapline models rollback megadetector --alias production"),
    _models("models verify", "check a version's config and weights checksum", VerifyOptions, "verify",
            example="trapline models verify megadetector:5"),
)

# The group's own help (batch/commands.py `GROUPS`).
MODELS_GROUP = ("manage versioned models in the model store",
                "Publish, inspect and quantize model versions; point aliases (production, ...) at them, roll "
                f"them back and verify them. --store: the {STORE_HELP}.")
