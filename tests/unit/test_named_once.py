"""Each fact said once (issue 54): what a registry holds is not listed again by hand.

A view is one module (batch/views/, with its `router`) and one page module (console/, exporting `pages`), and nothing
else names it: the routes are found by `attach_views`, the page modules by the service (`GET /console/modules.json`),
the docs' table of views is generated (docs/hooks/reference.py). The filters (model_store/core/filters `REGISTRY`)
and a format's own export options (its options model) are listed by the generated references only. This fails when a
second place comes back: a view without a page reading it, the console's entry naming a page, or a doc, the README,
a console module or a docstring listing the views, the filters or a format's options by hand."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

from fastapi.routing import APIRoute

from batch.views.pages import CONSOLE, MODULES, pages_reading
from batch.views.routes import view_routers

REPO = Path(__file__).resolve().parents[2]


def _api_paths(router) -> list[str]:
    return [r.path for r in router.routes if isinstance(r, APIRoute) and r.include_in_schema]


def _nav(module: str) -> list[tuple[str, str, str]]:
    """A page module's nav entries: (href, label, place)."""
    m = re.search(r"^export const nav = \[(.*)\];$", (CONSOLE / module).read_text(), re.MULTILINE)
    return re.findall(r'\["(#/[\w-]+)", "([^"]+)", (\d+)\]', m.group(1)) if m else []


def test_the_views_are_the_modules_with_a_router():
    """Read from the files themselves, not from a list: every module of batch/views/ that assigns a module-level
    `router = APIRouter(...)` is a view, and nothing else is."""
    assigned = set()
    for path in (REPO / "batch" / "views").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "router" for t in node.targets) \
                    and getattr(getattr(node.value, "func", None), "id", None) == "APIRouter":
                assigned.add(path.stem)
    assert set(view_routers()) == assigned


def test_every_view_has_a_page_module_that_reads_it():
    """A view with routes in the API has its page: a console module that calls one of them (a view serving its own
    pages, as the console's files and a report's, is one)."""
    pageless = [name for name, router in view_routers().items()
                if _api_paths(router) and not pages_reading(_api_paths(router))]
    assert not pageless, f"views no console page reads: {pageless} (add console/NAME.js exporting `pages`)"


def test_the_console_loads_the_page_modules_the_service_lists_and_names_none():
    exporting = sorted(p.name for p in CONSOLE.glob("*.js")
                       if re.search(r"^export\s+(const|let|function)\s+pages\b|^export\s*\{[^}]*\bpages\b",
                                    p.read_text(), re.MULTILINE))
    assert MODULES["pages"] == exporting  # however a module exports its pages, the service lists it
    assert sorted(MODULES["styles"]) == sorted(p.name for p in CONSOLE.glob("*.css"))
    html = (CONSOLE / "index.html").read_text()
    assert re.findall(r'<link rel="stylesheet" href="/console/([^"]+)">', html) == ["console.css"]
    for entry in ("console.js", "router.js", "index.html"):
        text = (CONSOLE / entry).read_text()
        for module in MODULES["pages"]:
            stem = module.removesuffix(".js")
            named = [s for s in (module, f'"./{stem}', f'"#/{stem}', f"'#/{stem}") if s in text]
            assert not named, f"{entry} names the page module {module}: {named}"
    # each nav link carries its own place, so no list orders them
    links = [e for m in MODULES["pages"] for e in _nav(m)]
    assert links and all(place for _, _, place in links)
    assert len({href for href, _, _ in links}) == len(links)


def _views() -> tuple[set[str], set[str]]:
    """The names a hand-written list of views would use: the view modules' (for every file), and the page modules'
    and nav labels' (for the docs and the console, not for Python, where command groups share some of the nouns)."""
    views = set(view_routers()) - {"pages"}  # the console's own files: "pages" is every page
    pages = {m.removesuffix(".js") for m in MODULES["pages"]} | {label for m in MODULES["pages"] for _, label, _ in
                                                                  _nav(m)}
    return views, views | pages


def _listing(names: set[str]) -> re.Pattern | None:
    """Three or more of `names` in a row, by commas and "and"/"or": a list, whatever their quoting or suffix."""
    if len(names) < 3:
        return None
    alt = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    word = rf"[*`\"']*(?:{alt})(?:\.js|\.py)?[*`\"']*"
    return re.compile(rf"(?<![\w/.-]){word}(?:\s*(?:,|,?\s+and|,?\s+or)\s+{word}){{2,}}", re.IGNORECASE)


def _registries() -> list[set[str]]:
    """The filters' names, and each export format's own flags (its options beyond what every format takes)."""
    from batch.export.common_options import FormatOptions
    from batch.export.registry import EXPORTERS
    from model_store.core.filters import REGISTRY

    own = [set(f.options.model_fields) - set(FormatOptions.model_fields) for f in EXPORTERS.values()]
    return [set(REGISTRY), *({"--" + n.replace("_", "-") for n in fields} for fields in own)]


def listings(files: list[str]) -> list[str]:
    """Where `files` list a registry by hand: the views anywhere (tests' sets of them too), the filters and a format's
    own options in docs and source (a test's `{...} <= listed` check does not go stale)."""
    views, everything = _views()
    found = []
    for name in files:
        text = (REPO / name).read_text(errors="ignore")
        lists = [views if name.endswith(".py") else everything]
        if not name.startswith("tests/"):
            lists += _registries()
        for pattern in filter(None, map(_listing, lists)):
            found += [f"{name}:{text[:m.start()].count(chr(10)) + 1}: {' '.join(m.group(0).split())}"
                      for m in pattern.finditer(text)]
    return found


def test_no_doc_docstring_or_console_module_lists_a_registry_by_hand():
    tracked = subprocess.run(["git", "ls-files", "*.md", "*.py", "*.js", "*.html"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
    assert "docs/architecture.md" in tracked and "batch/views/console/console.js" in tracked
    found = listings([f for f in tracked if f != Path(__file__).relative_to(REPO).as_posix()])  # its examples below
    assert not found, ("listed by hand (point at what is generated from the registry instead: the views' table in "
                       "docs/architecture.md, docs/reference/config.md, docs/reference/cli.md):\n" + "\n".join(found))


def test_a_list_of_views_is_caught_however_it_is_spelled(tmp_path, monkeypatch):
    """The check above can fail: the lists this round removed are found, in prose, in a package map and in code;
    command groups named like views are not a list of views."""
    import tests.unit.test_named_once as me

    monkeypatch.setattr(me, "REPO", tmp_path)
    (tmp_path / "a.md").write_text("the views (pictures, occurrences,\n individuals, models, deployments, reports)")
    (tmp_path / "b.md").write_text("the Occurrences, Individuals and Deployments pages share the tables")
    (tmp_path / "c.py").write_text('VIEWS = {"catalog", "deployments", "individuals", "occurrences"}')
    (tmp_path / "d.py").write_text('"""`trapline occurrences`, `deployments`, `jobs`, `models`: command groups"""')
    (tmp_path / "e.md").write_text("default filters (`min_size`, `class_mask`, `score`; each with an action)")
    (tmp_path / "f.md").write_text("`--timezone`, `--gap-s` and `--package-meta` are Camtrap DP's")
    assert [f.split(":")[0] for f in listings(["a.md", "b.md", "c.py", "d.py", "e.md", "f.md"])] == [
        "a.md", "b.md", "c.py", "e.md", "f.md"]
