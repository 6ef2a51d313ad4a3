"""A command's result as both its printers want it: `data` for `--json`, `text` for people. Here, on the ground
floor, because the runners that return it live in several rooms (batch/deployments/, batch/postprocessing/,
batch/jobs/, model_store/store/) and the lower of them may not import the higher."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Printed:
    """A command's result: `data` for --json, `text` for people."""

    data: Any
    text: str

    def json(self) -> str:
        return json.dumps(self.data, indent=2, default=str)
