"""The versioned model store: `<root>/<name>/<version>/{weights, config.json, README.md}`.

Aliases live in `<root>/<name>/_aliases/<alias>.json` ({"version", "history", "updated_at"}). An int8
version also holds `quantization.json` (its measured agreement with its parent), and an int8 version the
gate refused is filed as `<root>/<name>/_refused/<version>.json` (never a version: it has no config.json).
A version exists once its `config.json` does; publish writes that file last, so a reader
never sees a half-published version.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ground import env
from ground.errors import ChecksumError, NotFoundError, StoreError
from ground.storage import Storage
from model_store.core.backends import ModelLoadError, create_backend
from model_store.core.classifier import Classifier
from model_store.core.config import ClassifierConfig, ConfigError, parse_any_config
from model_store.core.detector import Detector
from model_store.core.identify.identifier import Identifier
from model_store.core.refs import DEFAULT_ALIAS, ModelRef, check_segment
from model_store.core.species.data import SpeciesSources, load_species, species_extras
from model_store.core.species.ensemble import SpeciesData
from model_store.store.prepare import default_card, prepare_config, sha256_file
from model_store.store.trainable import Trainable, read_trainable
from model_store.store.versions import AliasRecord, ModelVersion, version_sort_key

CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
ALIASES_DIR = "_aliases"
REFUSED_DIR = "_refused"
QUANTIZATION_FILE = "quantization.json"
LATEST = "latest"


class ModelStore:
    """Versioned detectors on local disk or S3.

    Lifecycle: constructing a store does no I/O. Every call reads the store afresh, so many
    processes (CLI, replicas, batch actors) can share one root; the only cached state is the
    local copy of a version's files under `cache_dir`, which is keyed by sha256 and verified.
    """

    def __init__(self, root: str | None = None, storage_options: dict[str, Any] | None = None,
                 cache_dir: str | None = None) -> None:
        root = root or env.MODEL_STORE.get()
        if "://" not in root:
            root = str(Path(root).expanduser().resolve())
        self.storage = Storage(root, storage_options)
        self.root = root
        self.cache_dir = Path(cache_dir or env.MODEL_CACHE.get()
                              or Path.home() / ".cache" / "trapline" / "models")

    # -- reading -------------------------------------------------------------------------
    def list_models(self) -> list[str]:
        """Names of models that have at least one published version."""
        return [n for n in self.storage.listdir() if _is_segment(n) and self.list_versions(n)]

    def list_versions(self, name: str) -> list[str]:
        """Published versions of `name`, oldest first (natural sort)."""
        check_segment("model name", name)
        versions = [v for v in self.storage.listdir(name) if _is_segment(v) and v != ALIASES_DIR]
        complete = [v for v in versions if self.storage.exists(name, v, CONFIG_FILE)]
        return sorted(complete, key=version_sort_key)

    def aliases(self, name: str) -> dict[str, AliasRecord]:
        """Every alias of `name`, including the implicit `latest` when not set explicitly."""
        out = {}
        for entry in self.storage.listdir(name, ALIASES_DIR):
            if entry.endswith(".json") and _is_segment(entry[:-5]):
                out[entry[:-5]] = self._read_alias(name, entry[:-5])
        if LATEST not in out:
            versions = self.list_versions(name)
            if versions:
                out[LATEST] = AliasRecord(versions[-1])
        return {k: v for k, v in out.items() if v is not None}

    def alias(self, name: str, alias: str) -> AliasRecord | None:
        """One explicit alias record (None if unset): a single small read, cheap enough to poll."""
        check_segment("model name", name)
        check_segment("alias", alias)
        return self._read_alias(name, alias)

    def _read_alias(self, name: str, alias: str) -> AliasRecord | None:
        try:
            data = json.loads(self.storage.read_bytes(name, ALIASES_DIR, f"{alias}.json"))
        except FileNotFoundError:
            return None
        return AliasRecord(str(data["version"]), tuple(data.get("history", ())), data.get("updated_at", ""))

    def resolve(self, ref: ModelRef | str) -> ModelRef:
        """Turn an alias (or a bare name, meaning `production`) into a pinned, existing version."""
        ref = ModelRef.parse(ref, DEFAULT_ALIAS) if isinstance(ref, str) else ref
        if ref.is_pinned:
            if not self.storage.exists(ref.name, ref.version, CONFIG_FILE):
                known = self.list_versions(ref.name)
                raise NotFoundError(f"no version {ref.version!r} of model {ref.name!r} (versions: {known or 'none'})")
            return ref
        alias = ref.alias or DEFAULT_ALIAS
        record = self._read_alias(ref.name, alias)
        if record is None and alias == LATEST:
            versions = self.list_versions(ref.name)
            record = AliasRecord(versions[-1]) if versions else None
        if record is None:
            if not self.list_versions(ref.name):
                raise NotFoundError(f"no model {ref.name!r} in store {self.root} (models: {self.list_models()})")
            known = sorted(self.aliases(ref.name))
            raise NotFoundError(f"model {ref.name!r} has no alias {alias!r} (aliases: {known})")
        return ref.pinned(record.version)

    def get(self, ref: ModelRef | str) -> ModelVersion:
        """Resolve `ref` and read its validated config."""
        pinned = self.resolve(ref)
        raw = self.storage.read_bytes(pinned.name, pinned.version, CONFIG_FILE)
        config = parse_any_config(raw, f"{pinned}/{CONFIG_FILE}")
        return ModelVersion(pinned.name, pinned.version, config, self.storage.url(pinned.name, pinned.version))

    def _version(self, ref: ModelRef | str | ModelVersion) -> ModelVersion:
        return ref if isinstance(ref, ModelVersion) else self.get(ref)  # a version already read is not read again

    def card(self, ref: ModelRef | str | ModelVersion) -> str:
        """The version's README.md model card ('' if none)."""
        mv = self._version(ref)
        try:
            return self.storage.read_bytes(mv.name, mv.version, CARD_FILE).decode()
        except FileNotFoundError:
            return ""

    def quantization(self, ref: ModelRef | str | ModelVersion) -> dict[str, Any] | None:
        """An int8 version's agreement with its parent, as `models quantize` measured it (None otherwise)."""
        mv = self._version(ref)
        try:
            return json.loads(self.storage.read_bytes(mv.name, mv.version, QUANTIZATION_FILE))
        except (FileNotFoundError, json.JSONDecodeError):
            return None  # the card holds the same figures as text

    def trainable(self, ref: ModelRef | str | ModelVersion) -> tuple[Trainable, bytes]:
        """The version's trainable weights (model_store/store/trainable.py): their record and verified bytes;
        NotFoundError when it was published without (ONNX only)."""
        mv = self._version(ref)
        return read_trainable(lambda file: self.storage.read_bytes(mv.name, mv.version, file), mv.ref, mv.kind)

    def refusals(self, name: str) -> list[dict[str, Any]]:
        """The int8 versions of `name` the quantization gate refused, newest first, each with its report."""
        check_segment("model name", name)
        out = []
        for entry in self.storage.listdir(name, REFUSED_DIR):
            if entry.endswith(".json") and _is_segment(entry[:-5]):
                try:
                    out.append(json.loads(self.storage.read_bytes(name, REFUSED_DIR, entry)))
                except (FileNotFoundError, json.JSONDecodeError):
                    continue  # being written, or not ours: a listing never fails on one file
        return sorted(out, key=lambda r: r.get("refused_at", ""), reverse=True)

    def record_refusal(self, name: str, version: str, report: dict[str, Any], reason: str) -> None:
        """File a refused candidate (nothing is published) so operators see why the version is missing."""
        check_segment("model name", name)
        check_segment("version", version)
        body = {**report, "version": version, "reason": reason, "refused_at": _now()}
        self.storage.write_atomic(json.dumps(body, indent=2).encode(), name, REFUSED_DIR, f"{version}.json")

    # -- integrity and loading -----------------------------------------------------------
    def fetch(self, ref: ModelRef | str) -> tuple[ModelVersion, Path]:
        """Make a verified local copy of the version's weights; returns (version, weights path)."""
        mv = self.get(ref)
        if mv.config.weights is None:
            raise StoreError(f"{mv.ref} ({mv.config.backend}) has no weights to fetch")
        wfile = mv.config.weights.file
        if self.storage.is_local:
            path = Path(self.storage.local_path(mv.name, mv.version, wfile))
            if not path.exists():
                raise NotFoundError(f"{mv.ref}: weights file {wfile!r} is missing")
        else:
            path = self.cache_dir / mv.config.weights.sha256 / wfile
            if not path.exists() or sha256_file(path) != mv.config.weights.sha256:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{wfile}.{uuid.uuid4().hex}")
                try:
                    self.storage.get_file(str(tmp), mv.name, mv.version, wfile)
                except FileNotFoundError:
                    raise NotFoundError(f"{mv.ref}: weights file {wfile!r} is missing") from None
                os.replace(tmp, path)
        actual = sha256_file(path)
        if actual != mv.config.weights.sha256:
            raise ChecksumError(
                f"{mv.ref}: sha256 of {wfile} is {actual}, config.json says {mv.config.weights.sha256}; "
                "refusing to load (re-publish the version or restore the file)"
            )
        return mv, path

    def verify(self, ref: ModelRef | str) -> ModelVersion:
        """Check config and weights checksum; raises ConfigError / ChecksumError / NotFoundError."""
        mv = self.get(ref)
        return mv if mv.config.weights is None else self.fetch(mv.ref)[0]  # keypoints: the config is the model

    def load_detector(self, ref: ModelRef | str, device: str = "cpu", threads: int | None = None):
        """Verify and load a detector version into a ready `Detector`."""
        mv, path = self._fetch_kind(ref, classifier=False)
        return Detector(mv.info, mv.config, self._backend(mv, path, device, threads))

    def load_classifier(self, ref: ModelRef | str, device: str = "cpu", threads: int | None = None):
        """Verify and load a classifier version (backend onnx-classifier) into a ready `Classifier`."""
        mv, path = self._fetch_kind(ref, classifier=True)
        return Classifier(mv.info, mv.config, self._backend(mv, path, device, threads), self.species(mv))

    def species(self, ref: ModelRef | str | ModelVersion) -> SpeciesData | None:
        """A classifier version's taxonomy and geofence (sha256-verified), or None when it was published without."""
        mv = self._version(ref)
        files = getattr(mv.config, "species", None)
        if files is None:
            return None
        return load_species(files, lambda file: self.storage.read_bytes(mv.name, mv.version, file),
                            mv.config.labels, str(mv.ref))

    def load_identifier(self, ref: ModelRef | str, device: str = "cpu", threads: int | None = None) -> Identifier:
        """Load an identifier version (keypoints: nothing to fetch; onnx-embedding: weights verified first)."""
        mv = self._check_kind(self.get(ref), "identifier")
        if mv.config.weights is None:
            return Identifier(mv.info, mv.config)
        mv, path = self.fetch(mv.ref)
        return Identifier(mv.info, mv.config, self._backend(mv, path, device, threads))

    def _fetch_kind(self, ref: ModelRef | str, classifier: bool) -> tuple[ModelVersion, Path]:
        mv = self._check_kind(self.get(ref), "classifier" if classifier else "detector")
        return self.fetch(mv.ref)

    @staticmethod
    def _check_kind(mv: ModelVersion, want: str) -> ModelVersion:
        if mv.kind != want:
            hint = {"classifier": ": give it to --classify / a pipeline's classifiers",
                    "identifier": ": give it to trapline identify --identifier"}.get(mv.kind, "")
            raise ConfigError(f"{mv.ref} is a {mv.kind} (backend {mv.config.backend}), not a {want}{hint}")
        return mv

    @staticmethod
    def _backend(mv: ModelVersion, path: Path, device: str, threads: int | None):
        try:
            return create_backend(mv.config, path, device=device, threads=threads)
        except ModelLoadError as exc:  # name the version: a replica or job log holds many
            raise ModelLoadError(f"{mv.ref}: {exc}") from None

    # -- writing -------------------------------------------------------------------------
    def publish(self, weights: str | Path | None, name: str, version: str,
                config: str | Path | dict[str, Any] | None = None, card: str | Path | None = None,
                preset: str | None = None, extras: dict[str, bytes] | None = None,
                species: SpeciesSources | None = None) -> ModelVersion:
        """Publish a new version; refuses to overwrite, and leaves nothing behind if it fails.

        For ONNX weights the graph is inspected first: the config is derived from it (an
        Ultralytics or YOLOv5 export needs none), `preset` and then `config` override it, and a
        config that contradicts the graph is refused with both values named. `extras` are more files
        of the version (e.g. quantization.json), written before config.json like the rest. `weights` is None
        for a `keypoints` identifier: its config.json is the whole model. `species`: a classifier's taxonomy and
        geofence files (checked against its labels and each other, named with their sha256 in config.json).

        Eight parameters: the new version's own parts, each an input the caller has or has not: the weights file
        (None for a keypoints identifier), the name and version, the config (a file, a dict, or None: derived from
        the graph), the model card, a preset, extra files, and a classifier's species files; some 200 calls (the CLI,
        the demo, quantize, the tests) pass the first three and one or two of the others by keyword."""
        check_segment("model name", name)
        check_segment("version", version)
        weights = Path(weights) if weights is not None else None
        parsed = prepare_config(weights, config, preset, f"config for {name}:{version}")
        if species is not None:
            if not isinstance(parsed, ClassifierConfig):
                raise ConfigError(f"{name}:{version} is not a classifier: only a classifier has taxonomy and geofence")
            species_files, entry = species_extras(species, parsed.labels, f"{name}:{version}")
            parsed, extras = parsed.model_copy(update={"species": entry}), {**(extras or {}), **species_files}
        card_text = Path(card).read_text() if card else default_card(name, version, parsed)
        if self.storage.exists(name, version):
            raise StoreError(f"{name}:{version} already exists in {self.root}; versions are immutable, "
                             "publish a new version instead")
        with self._staging(name, version) as stage:
            wfile = parsed.weights.file if parsed.weights is not None else None
            if wfile is not None:
                self.storage.put_file(str(weights), *stage, wfile)
            self.storage.write_atomic(card_text.encode(), *stage, CARD_FILE)
            for file, data in (extras or {}).items():
                if file in (CARD_FILE, CONFIG_FILE, wfile) or not _is_segment(file):
                    raise StoreError(f"cannot publish an extra file named {file!r}")
                self.storage.write_atomic(data, *stage, file)
            config_bytes = json.dumps(parsed.model_dump(mode="json"), indent=2).encode()
            self.storage.write_atomic(config_bytes, *stage, CONFIG_FILE)  # last: marks the version complete
        return self.get(ModelRef(name, version=version))

    @contextmanager
    def _staging(self, name: str, version: str) -> Iterator[tuple[str, ...]]:
        # Locally: write into a hidden sibling directory, then rename it into place (atomic).
        # On S3 there is no rename: write in place with config.json last, and delete on failure.
        if self.storage.is_local:
            stage = (name, f".staging-{version}-{uuid.uuid4().hex[:8]}")
            self.storage.makedirs(*stage)
            try:
                yield stage
                os.rename(self.storage.path(*stage), self.storage.path(name, version))
            except BaseException:
                shutil.rmtree(self.storage.path(*stage), ignore_errors=True)
                raise
        else:
            try:
                yield (name, version)
            except BaseException:
                self.storage.remove_tree(name, version)
                raise

    def promote(self, ref: ModelRef | str, alias: str = DEFAULT_ALIAS) -> AliasRecord:
        """Point `alias` at a version after verifying it; the old target is kept for rollback."""
        check_segment("alias", alias)
        ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
        if not ref.is_pinned:
            ref = self.resolve(ref)
        mv = self.verify(ref)  # a version with a bad config or checksum never gets an alias
        current = self._read_alias(mv.name, alias)
        history = list(current.history) if current else []
        if current and current.version != mv.version:
            history.append(current.version)
        record = AliasRecord(mv.version, tuple(history[-20:]), _now())
        self._write_alias(mv.name, alias, record)
        return record

    def rollback(self, name: str, alias: str = DEFAULT_ALIAS) -> AliasRecord:
        """Return `alias` to the version it pointed at before the last promote."""
        check_segment("model name", name)
        check_segment("alias", alias)
        current = self._read_alias(name, alias)
        if current is None:
            raise NotFoundError(f"model {name!r} has no alias {alias!r} to roll back")
        if not current.history:
            raise StoreError(f"{name}@{alias} has no earlier version to roll back to (it is {current.version})")
        record = AliasRecord(current.history[-1], current.history[:-1], _now())
        self._write_alias(name, alias, record)
        return record

    def _write_alias(self, name: str, alias: str, record: AliasRecord) -> None:
        body = {"version": record.version, "history": list(record.history), "updated_at": record.updated_at}
        self.storage.write_atomic(json.dumps(body).encode(), name, ALIASES_DIR, f"{alias}.json")


def _is_segment(value: str) -> bool:
    try:
        check_segment("name", value)
    except ValueError:
        return False
    return True


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
