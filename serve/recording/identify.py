"""Re-identification online: each kept detection an identifier covers, matched against the gallery of the tables
the service records into, answered in `/v1/detect` and `/v1/images` as `individual`.

The gallery is the newest `trapline identify` run of those tables with people's decisions applied (their merges,
splits and names: model_store/tables/identities.py `current`): each sighting's snip is cut from its archive image and
described once, when the first request needs it. A recorded upload's sightings join the gallery as soon as the
recorder has journalled it (durable from then on), so the next upload of the same animal matches it.

An animal unlike every known one is `new`: a provisional individual whose id is stable for that image and box
(not forced onto the nearest). The next `trapline identify` run clusters every sighting, these included.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from model_store import ModelStore
from model_store.core.crops import crop_box
from model_store.core.identify.features import Description
from model_store.core.identify.gallery import Gallery
from model_store.core.identify.identifier import Identifier
from model_store.core.imaging import decode_image
from model_store.core.records import ImageDetections
from model_store.tables.identities import current, cut_snips
from model_store.tables.locations import open_location

if TYPE_CHECKING:
    from serve.config import IdentifyRoute, ServeConfig


@dataclass
class Sighting:
    """One detection of this request the identifier looked at, and what it found."""

    index: int  # position in the record's kept detections
    answer: dict[str, Any]
    description: Description | None = None


@dataclass
class OnlineIdentifier:
    """Identifies one detector's covered detections against a gallery of known sightings.

    Lifecycle: built by the ingress per served detector from its `identify` route (serve/config.py `IdentifyRoute`,
    kept whole, its `tables` resolved); nothing is loaded until the first
    `identify`, which loads the identifier from the store (an ONNX identifier's sha256 verified) and builds the
    gallery from `tables`. `identify(rgb, record, image_key)` answers per covered kept detection; `join` adds a
    request's sightings to the gallery (a recorded upload). The gallery is not thread-safe: one lock serialises
    search and growth (requests run in worker threads).
    """

    route: IdentifyRoute  # its `tables` set: the recorder's when the route named none
    store: str | None
    _ident: Identifier | None = None
    _gallery: Gallery | None = None
    _owners: list[str] = field(default_factory=list)  # gallery entry -> individual id
    _names: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _load(self) -> None:
        ident = ModelStore(self.store).load_identifier(self.route.identifier)
        cur = current(open_location(self.route.tables))
        rows = cur.sightings.dropna(subset=["individual_id"]).reset_index(drop=True)
        gallery, owners = Gallery(ident), []
        if len(rows) and "bbox_x" in rows.columns:
            descs = ident.describe(cut_snips(rows))
            kept = [i for i, d in enumerate(descs) if isinstance(d, Description)]
            gallery.add([descs[i] for i in kept])
            owners = [rows.at[i, "individual_id"] for i in kept]
        self._names = {r.individual_id: r.name for r in cur.individuals.itertuples() if isinstance(r.name, str)}
        self._ident, self._gallery, self._owners = ident, gallery, owners

    @property
    def gallery_size(self) -> int:
        return len(self._owners)

    def identify(self, rgb: np.ndarray, record: ImageDetections, image_key: str) -> list[Sighting]:
        """Per kept detection whose label the identifier covers: {id, name, p_same, decision, candidates}."""
        with self._lock:
            if self._ident is None:
                self._load()
            ident, gallery = self._ident, self._gallery
            covered = [(i, d) for i, d in enumerate(record.detections) if ident.covers(d.label)]
            if not covered:
                return []
            descs = ident.describe([crop_box(rgb, d.box_px) for _, d in covered])
            out = []
            for (i, _), desc in zip(covered, descs, strict=True):
                if not isinstance(desc, Description):
                    out.append(Sighting(i, {"id": None, "name": None, "p_same": None, "decision": "unidentifiable",
                                            "reason": desc, "candidates": []}))
                    continue
                out.append(Sighting(i, self._answer(gallery.query(desc), image_key, i), desc))
            return out

    def identify_upload(self, data: bytes, record: ImageDetections) -> list[Sighting]:
        """`identify` on an upload's bytes (decoded again here: the detector replica decoded them already, within
        its max_pixels), its sightings' provisional ids keyed by the bytes' sha256."""
        return self.identify(decode_image(data), record, hashlib.sha256(data).hexdigest())

    def _answer(self, found, image_key: str, index: int) -> dict[str, Any]:
        best: dict[str, float] = {}  # individual -> its best P(same) among the verified candidates
        for c in found:
            owner = self._owners[c.index]
            best[owner] = max(best.get(owner, 0.0), c.p_same)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))
        top = [{"id": i, "name": self._names.get(i), "p_same": round(p, 4)} for i, p in ranked[:self.route.candidates]]
        if ranked and ranked[0][1] >= self.route.threshold:
            ident, p = ranked[0]
            return {"id": ident, "name": self._names.get(ident), "p_same": round(p, 4), "decision": "matched",
                    "candidates": top}
        provisional = "ind-new-" + hashlib.sha1(f"{image_key}#{index}".encode()).hexdigest()[:10]
        return {"id": provisional, "name": None, "p_same": round(ranked[0][1], 4) if ranked else None,
                "decision": "new", "candidates": top}

    def join(self, sightings: list[Sighting]) -> None:
        """Add a recorded upload's described sightings to the gallery, under the ids they were answered with."""
        joining = [s for s in sightings if s.description is not None and s.answer["id"]]
        if not joining:
            return
        with self._lock:
            self._gallery.add([s.description for s in joining])
            self._owners += [s.answer["id"] for s in joining]


def online_identifiers(config: ServeConfig) -> dict[str, OnlineIdentifier]:
    """One per served detector with an `identify` route, over its gallery's tables (default: the recorder's)."""
    return {m.name: OnlineIdentifier(
        m.identify.model_copy(update={"tables": m.identify.tables or config.record.tables}), config.store)
        for m in config.models if m.identify is not None}
