"""A version's trainable weights: what `trapline models train` starts from.

A classifier is served from its ONNX graph, which cannot be trained on (its batch norms are folded, its graph is
frozen). A version that can be fine-tuned carries its torch weights too, as two more files of the version, written
before config.json like every extra file (so a reader never sees them half-published):

- `trainable.pt`: the network's `state_dict` as `torch.save` wrote it;
- `trainable.json`: {"architecture", "file", "sha256", "labels", "format"}: the network that state_dict fits (a name
  the trainer knows how to build, e.g. `demo-tiny-classifier`), the file and its sha256 (checked before every load,
  as the weights' are), and the labels its outputs are in.

No torch here: the store moves bytes; the trainer (batch/train/) builds the network and loads them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ground.errors import ChecksumError, NotFoundError, StoreError
from model_store.core.refs import ModelRef

TRAINABLE_FILE = "trainable.pt"
TRAINABLE_RECORD = "trainable.json"
STATE_DICT = "torch-state-dict"


@dataclass(frozen=True)
class Trainable:
    """What trainable.json says: the architecture, the weights file and its sha256, the labels of its outputs."""

    architecture: str
    sha256: str
    labels: tuple[str, ...]
    file: str = TRAINABLE_FILE
    format: str = STATE_DICT

    def as_dict(self) -> dict[str, Any]:
        return {"architecture": self.architecture, "file": self.file, "sha256": self.sha256,
                "labels": list(self.labels), "format": self.format}


def trainable_extras(architecture: str, state: bytes, labels: list[str] | tuple[str, ...]) -> dict[str, bytes]:
    """The extra files (`ModelStore.publish(extras=...)`) that make a version trainable: the state_dict's bytes and
    its record."""
    if not architecture:
        raise StoreError("trainable weights need the name of their architecture")
    record = Trainable(architecture, hashlib.sha256(state).hexdigest(), tuple(labels))
    return {TRAINABLE_FILE: state, TRAINABLE_RECORD: json.dumps(record.as_dict(), indent=2).encode()}


def parse_trainable(raw: bytes, where: str) -> Trainable:
    """trainable.json's record, or a StoreError naming `where` and what is wrong."""
    try:
        doc = json.loads(raw)
        out = Trainable(str(doc["architecture"]), str(doc["sha256"]), tuple(str(x) for x in doc["labels"]),
                        str(doc.get("file", TRAINABLE_FILE)), str(doc.get("format", STATE_DICT)))
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{where}/{TRAINABLE_RECORD} is not a trainable-weights record ({type(exc).__name__}: "
                         f"{exc}); re-publish the version") from None
    if out.format != STATE_DICT:
        raise StoreError(f"{where}/{TRAINABLE_RECORD}: format {out.format!r} is not one trapline trains "
                         f"({STATE_DICT!r})")
    return out


def read_trainable(read: Any, ref: ModelRef, kind: str) -> tuple[Trainable, bytes]:
    """The version's trainable record and its verified weights' bytes. `read(file)` reads one file of the version
    (FileNotFoundError when it has none). A version without them is a NotFoundError saying how to give them."""
    try:
        raw = read(TRAINABLE_RECORD)
    except FileNotFoundError:
        raise NotFoundError(
            f"{ref} has no trainable weights: it was published as ONNX only (a {kind} is served from its frozen "
            f"graph). Fine-tune a version published with its torch weights ({TRAINABLE_FILE} and "
            f"{TRAINABLE_RECORD} beside the ONNX, as `trapline models train` and the demo's demo-species publish "
            "them)") from None
    record = parse_trainable(raw, str(ref))
    try:
        state = read(record.file)
    except FileNotFoundError:
        raise NotFoundError(f"{ref}: trainable weights file {record.file!r} is missing") from None
    actual = hashlib.sha256(state).hexdigest()
    if actual != record.sha256:
        raise ChecksumError(f"{ref}: sha256 of {record.file} is {actual}, {TRAINABLE_RECORD} says {record.sha256}; "
                            "refusing to train from it (re-publish the version or restore the file)")
    return record, state
