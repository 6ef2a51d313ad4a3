"""Every table's Arrow schema is declared in model_store/tables/schema.py: no other product module builds one with
`pa.schema(...)` from its own fields, so a table at rest has one definition that both doors and every reader share.
Allowed elsewhere: schemas composed of schema.py's own (the reader adds the partition columns) and answers that are
never stored (the Cameras page's per-camera figures)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOME = REPO / "model_store" / "tables" / "schema.py"
# module -> why its pa.schema(...) is not a table's schema
ALLOWED = {"model_store/tables/reader.py": "schema.py's SCHEMAS + PARTITION_SCHEMA, composed on read",
           "model_store/tables/camera_summary.py": "an aggregation answer kept in memory, never written"}


def schema_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text())
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute) and node.func.attr == "schema"
            and isinstance(node.func.value, ast.Name) and node.func.value.id in ("pa", "pyarrow")]


def test_no_table_schema_is_declared_outside_schema_py():
    found = {}
    for top in ("trapline", "model_store", "serve", "batch", "ground"):
        for path in sorted((REPO / top).rglob("*.py")):
            rel = str(path.relative_to(REPO))
            if path != HOME and rel not in ALLOWED and (lines := schema_calls(path)):
                found[rel] = lines
    assert not found, f"declare these tables' schemas in model_store/tables/schema.py: {found}"
    assert schema_calls(HOME) and all(schema_calls(REPO / rel) for rel in ALLOWED)  # the scan sees what is there
