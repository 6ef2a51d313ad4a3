"""Clips through the live deployment (`--via serve`): decoded here, detected there.

A replica answers for images, and a clip's frames and tracks belong together; so the client actor opens the clip,
streams its sampled frames and letterboxes them (the core's clip loop, `model_store.core.clips.detect_clip`), and
only the forward pass, boxes, NMS and filters go to the deployment, a batch of letterboxed frames a call
(`detect_prepared_many`, as `--decode tasks` sends stills). The tracks and the clip's record are made here: the
same record `--via actors` writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from model_store import ImageDetections, ModelRunError
from model_store.core.preprocess import LetterboxMeta, Preprocessor


class ServedFrames:
    """What the clip loop needs of a detector (`preprocessor`, `run_planar`), with the model in the deployment.

    `send(images, metas)` makes one call and returns its Serve response; `retry_in(exc, tries)` is the client's
    policy for a failed frame (seconds to wait, None: refused for good; it raises when resending cannot help).
    """

    def __init__(self, preprocessor: Preprocessor, send: Callable, check: Callable[[ImageDetections], None],
                 retry_in: Callable[[BaseException, object], float | None], tries: Callable[[], object]) -> None:
        self.preprocessor = preprocessor
        self.config = preprocessor.config  # the run's: its tiling cuts the frames here, the deployment runs the tiles
        self.info = None  # the version is checked on every answer (`check`)
        self.default_filters = None  # the deployment applies the run's filters
        self._send, self._check, self._retry_in, self._tries = send, check, retry_in, tries

    def run_planar(self, planes: np.ndarray, metas: Sequence[LetterboxMeta], filters=None
                   ) -> list[ImageDetections | Exception]:
        """The clip loop's batch of (3, H, W) planes, sent as the HWC inputs the deployment takes."""
        return self.run_prepared([np.ascontiguousarray(p.transpose(1, 2, 0)) for p in planes], metas, filters)

    def run_prepared(self, prepared: Sequence[np.ndarray], metas: Sequence[LetterboxMeta], filters=None
                     ) -> list[ImageDetections | Exception]:
        """One call for the frames; each frame the deployment refused for good comes back as its error."""
        out: list[ImageDetections | Exception | None] = [None] * len(prepared)
        todo, tries = list(range(len(prepared))), [self._tries() for _ in prepared]
        while todo:
            try:
                answers = list(self._send([prepared[j] for j in todo], [metas[j] for j in todo]).result())
            except Exception as exc:  # noqa: BLE001 - the call as a whole failed: each frame sorts it out
                answers = [exc] * len(todo)
            again, wait = [], 0.0
            for j, answer in zip(todo, answers, strict=True):
                if not isinstance(answer, BaseException):
                    record = ImageDetections.model_validate(answer)
                    self._check(record)
                    out[j] = record
                    continue
                try:
                    delay = self._retry_in(answer, tries[j])
                except Exception as exc:  # noqa: BLE001 - out of tries: the clip's row fails, a rerun sends it again
                    raise ModelRunError(f"the deployment did not answer for a frame: {exc}") from exc
                if delay is None:
                    out[j] = ModelRunError(f"the deployment refused frame {j} of the batch: {answer}")
                else:
                    again.append(j)
                    wait = max(wait, delay)
            todo = again
            time.sleep(wait)
        return out  # type: ignore[return-value]
