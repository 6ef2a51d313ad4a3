"""The backfill on promote: when a watched alias moves to a version, one reprocess job of that version.

Every ingress replica watches (the store is the truth, so a promote from the CLI counts as much as one through
the admin route), and every one of them may submit: the job's submission id is derived from model, alias and
version, and Ray's job manager refuses a second job with the same id, so a version is backfilled once however
many replicas notice, and after a restart too (for as long as the cluster keeps its job table). An alias that
has never moved (no history: its first assignment) starts nothing.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from batch.jobs.control import JobControl
from ground.errors import DuplicateJobError, TraplineError
from model_store import ModelStore

logger = logging.getLogger("ray.serve.trapline")


def backfill_id(model: str, alias: str, version: str) -> str:
    """The submission id of the backfill of `model`@`alias` -> `version` (Ray refuses a second one)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"trapline-backfill-{model}-{alias}-{version}")[:128]


class BackfillWatcher:
    """Polls the aliases of the models with an `on_promote` policy; `check_once` is one round."""

    def __init__(self, control: JobControl, store: ModelStore, policies: dict[str, tuple[str, dict[str, Any]]],
                 interval_s: float) -> None:
        self.control, self.store, self.policies, self.interval_s = control, store, policies, interval_s
        self.settled: set[str] = set()  # submission ids submitted (or refused as already submitted)
        self.warned: set[str] = set()

    def check_once(self) -> list[str]:
        """Submit what is due; returns the submission ids of the jobs this call submitted."""
        submitted = []
        for model, (alias, reprocess) in self.policies.items():
            try:
                record = self.store.aliases(model).get(alias)
            except TraplineError as exc:
                self._warn(f"{model}@{alias}", f"cannot read the aliases of {model}: {exc}")
                continue
            if record is None or not record.history:
                continue
            sid = backfill_id(model, alias, record.version)
            if sid in self.settled:
                continue
            try:
                self.control.submit("reprocess", {**reprocess, "model": f"{model}:{record.version}"},
                                    submission_id=sid, origin=f"promote {model}@{alias}", trusted=True,
                                    name=f"backfill of {model}:{record.version} ({model}@{alias} promoted)")
                submitted.append(sid)
                logger.info("backfill: %s@%s -> %s: job %s submitted", model, alias, record.version, sid)
            except DuplicateJobError:
                pass  # another replica, an earlier life of this one, or an identical running job
            except TraplineError as exc:
                self._warn(sid, f"backfill of {model}:{record.version} not submitted: {exc}")
                continue
            self.settled.add(sid)
        return submitted

    def _warn(self, key: str, message: str) -> None:
        if key not in self.warned:  # once per cause, not once per poll
            self.warned.add(key)
            logger.warning(message)

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.check_once)
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive any one failure
                self._warn(repr(exc), f"backfill watcher: {exc!r}")
            await asyncio.sleep(self.interval_s)
