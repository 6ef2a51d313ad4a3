"""Issue 65: an options model travels whole; no product function takes more than 6 parameters without saying why
in its docstring ("Seven parameters: ..." — the number written out or as digits, and it must be the count).

An AST walk over the product packages (self/cls not counted, *args and **kwargs counted once each). Every function
over the limit gives its reason (UNEXPLAINED_CEILING is 0).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("batch", "model_store", "serve", "trapline", "ground")
MAX_PARAMETERS = 6
NUMBERS = {"seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
           "fourteen": 14, "fifteen": 15, "sixteen": 16}
REASON = re.compile(r"\b(\d+|" + "|".join(NUMBERS) + r") parameters:", re.IGNORECASE)
# 2026-11-28: 78; then 68 once run_identify, run_postprocess, run_crops and run_events took their options model
# whole and the occurrence decisions their set as one value (SetPlace); 64 once identify's sightings took its matches
# as one value and the snips' writers and names their set (SnipSet); 63 once merge_boxes took its tiling settings whole;
# 50 once the occurrence and deployment views took their set as one SetPlace dependency (batch/views/deps.py
# `set_place`) and the constructors Ray and Serve call (actors, ingress) and the widest routes said why; 49 once
# the compare route parsed its refs and scope at the door (version_comparison takes them made); 48 once
# smoothed_labels read its set from the ExtraTables that already holds it; 47 once the Camtrap DP descriptor took
# its result set (TableSet) whole; 38 once the online door's detect chain (routes, ingress, one hop, the Antenna
# door, the recorder) passed each request's settings whole (serve/answers.py DetectAsk, ClipAsk) and run_local said why;
# 34 once the clip loop took its ClipSettings whole and its reading in one ClipDecoding (run_clip: one ClipReading);
# 33 once layout_contradiction took the model config whole; 17 once the numeric kernels of the tracker (tracking,
# track_costs, track_folds, track_stitching), the repeat filter's match count, SpeciesNet's roll-up and combiner,
# the parity comparison and classification_from_scores said why their arrays and values travel apart; 14 once the
# reprocess plan's steps took what they read whole (preflight_serve the Plan, choose_target the ReprocessOptions,
# select one Window); 13 once correct_clock took the decision's fields as CorrectClock checks them (as `make`); 10
# once ExtraTables took its source set (TableSet) whole, link_occurrences read its tables, set and filters from it,
# and clip_observations derived its classifiedBy from the set; 9 once compare_versions took its two sides (Side);
# 0 once the last nine said why (the browser's visit, ModelStore.publish, the captures page's query, the tables'
# committed_detections, part_metadata, write_part and moved_roots, quantize_version and its _command).
# It stays 0: a new long signature takes its options whole, or says why. (Those that say why: 45 -> 33 on 2026-11-29,
# once the tracker's passes took their per-camera state as one value and the reprocess actors one frozen settings
# value each, issue 83.)
UNEXPLAINED_CEILING = 0


def _count(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = fn.args
    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    if names and names[0] in ("self", "cls"):
        names = names[1:]
    return len(names) + bool(a.vararg) + bool(a.kwarg)


def long_signatures() -> list[tuple[str, str, int, str]]:
    """(file, function, parameters, docstring) of every product function over the limit."""
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _count(node) > MAX_PARAMETERS:
                    out.append((rel, f"{node.name}:{node.lineno}", _count(node), ast.get_docstring(node) or ""))
    return out


def test_a_reason_given_names_the_count_it_excuses():
    wrong = []
    for rel, name, n, doc in long_signatures():
        m = REASON.search(doc)
        if m and NUMBERS.get(m.group(1).lower(), int(m.group(1)) if m.group(1).isdigit() else 0) != n:
            wrong.append(f"{rel} {name}: says {m.group(1)}, takes {n}")
    assert not wrong, wrong


def test_functions_over_six_parameters_without_a_reason_do_not_grow():
    unexplained = [f"{rel} {name} ({n})" for rel, name, n, doc in long_signatures() if not REASON.search(doc)]
    assert len(unexplained) <= UNEXPLAINED_CEILING, (
        "pass the options model whole, or say why in the docstring ('Seven parameters: ...'):\n"
        + "\n".join(unexplained))
