"""Prose that cannot go stale: every repository path the docs, the README, the other Markdown files, the docstrings
and the comments name exists (issue 65). Four had gone (a module renamed, a test merged, a page copied under another
name) and nothing noticed; a reader who follows one finds nothing.

A path counts when it starts at a top-level folder of the repository (`batch/...`, `docs/guide/...`, `tests/...`),
at a folder inside a product package (`tables/reader.py`, looked for in every room of that name), or is a Markdown
link; it is looked for from the repository root (and, for a link, from the page too). Paths of other
projects (`ray/serve/_private/replica.py`, `speciesnet/...`), placeholders (`OUT/index.html`) and a run's outputs
(`bench-results/...`) start elsewhere and are not checked. Pages the docs build makes (docs/hooks/reference.py: the
reference pages, the copied top-level pages) count as existing."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import tokenize
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The files a walk-through has its reader write (docs/extending.md): named before they exist, on purpose.
WALKED_THROUGH = {"batch/export/csv_boxes.py", "batch/export/csv_boxes_options.py", "batch/views/nights.py",
                  "batch/views/nights_protocol.py", "batch/views/console/nights.js"}

# Paths that start like a room's but name another project's file, or a reader's own.
ELSEWHERE = {"postprocessing/classification_postprocessing.py",  # MegaDetector's
             "jobs/weekly.yaml"}  # a job file the archive guide has its reader write
PRODUCT = ("batch", "model_store", "serve", "trapline", "ground")

# dir/dir/name.ext or dir/dir/ (a folder), the first part a word; `...`, `<name>` and `*` are not matched as paths.
_PATH = re.compile(r"""(?<![\w./*<>$-])
    ((?:[A-Za-z_][\w.-]*/)+                         # the folders
     (?:[\w-][\w.-]*\.[A-Za-z0-9]{1,5}\b(?![/*<])   # a file name with its extension
      |(?=[\s`'"),;:]|$)))                          # or a folder, ending there""", re.X)
_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
# a run's output (`--out benchmarks/results/x.json`) is named before it is written
_OUTPUT = re.compile(r"(?:--out[ =]|> ?)$")
_COMMENTED = {".js": "//", ".css": "/*", ".yaml": "#", ".yml": "#", ".toml": "#", ".sh": "#"}


def tracked() -> list[str]:
    return subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()


def python_prose(source: str) -> Iterator[str]:
    """A module's docstrings and comments."""
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            if (doc := ast.get_docstring(node, clean=False)) is not None:
                yield doc


def prose(path: str) -> Iterator[str]:
    text = (REPO / path).read_text(errors="replace")
    suffix = Path(path).suffix
    if suffix == ".md":
        yield text
    elif suffix == ".py":
        yield from python_prose(text)
    elif path in ("Makefile", "Dockerfile") or suffix in _COMMENTED:
        mark = _COMMENTED.get(suffix, "#")
        yield from (line.split(mark, 1)[1] for line in text.splitlines() if mark in line)


def built_pages() -> tuple[set[Path], set[Path]]:
    """What the docs build writes (docs/hooks/reference.py): the generated reference pages, named anywhere, and the
    copied top-level pages (BENCHMARKS.md as docs/benchmarks.md)."""
    nav = re.findall(r":\s*([\w/.-]+\.md)\s*$", (REPO / "mkdocs.yml").read_text(), re.M)
    built = {REPO / "docs" / page for page in nav if not (REPO / "docs" / page).exists()}
    generated = {p for p in built if p.parent.name == "reference"}
    return generated | {REPO / "docs" / "reference"}, built - generated


def repo_paths(text: str, starts: set[str]) -> Iterator[str]:
    """The paths in `text` whose first folder is one of `starts`, outputs left out."""
    for m in _PATH.finditer(text):
        if m.group(1).split("/", 1)[0] in starts and not _OUTPUT.search(text[max(0, m.start() - 6):m.start()]):
            yield m.group(1)


def named_paths(files: list[str]) -> Iterator[tuple[str, str, tuple[Path, ...]]]:
    """(file, path as written, where it may be) for every repository path or link the prose of `files` names."""
    tops = {f.split("/", 1)[0] for f in files if "/" in f}
    # a path from inside a room (`tables/reader.py`: model_store/tables/reader.py), its first folder one of theirs
    rooms = {Path(f).parent for f in files if f.split("/", 1)[0] in PRODUCT}
    inside = {room.name for room in rooms} - tops
    for file in files:
        for text in prose(file):
            for path in repo_paths(text, tops):
                yield file, path, (REPO / path,)
            for path in repo_paths(text, inside):
                if path not in ELSEWHERE:
                    yield file, path, tuple(REPO / room / path for room in rooms)
            if file.endswith(".md"):
                for target in _LINK.findall(text):
                    if "://" not in target and not target.startswith("mailto:"):
                        yield file, f"]({target})", ((REPO / file).parent / target, REPO / target)


def test_every_path_the_prose_names_exists():
    files = tracked()
    generated, copied = built_pages()
    written = generated | {REPO / p for p in WALKED_THROUGH}
    seen, missing = 0, []
    for file, path, places in named_paths(files):
        seen += 1
        # a copied page (docs/benchmarks.md) exists once the docs are built: named or linked, it counts, whether or
        # not this checkout has built them (make test does before pytest; a plain pytest run may not)
        if not any(p.exists() or p.resolve() in written | copied for p in places):
            missing.append(f"{file}: {path}")
    assert seen > 500, seen  # the patterns still find the paths the prose names
    assert missing == [], "named but not in the repository:\n" + "\n".join(sorted(set(missing)))


def test_the_patterns_find_what_a_reader_would_follow():
    text = ("see batch/postprocessing/occurrences.py, `docs/guide/species.md` and serve/ (not ray/serve/x.py, "
            "not OUT/index.html nor batch/views/<name>.py); --out benchmarks/results/x.json")
    assert list(repo_paths(text, {"batch", "docs", "serve", "benchmarks"})) == [
        "batch/postprocessing/occurrences.py", "docs/guide/species.md", "serve/"]
