"""The docs cannot drift from the code: every `trapline` command the README and the user guide show parses with
today's CLI, a page that publishes a model promotes it before naming it by alias, every error class documents itself
(the generated error page lists them all), and the reference pages generate. The README's archive commands and the
guide's Python blocks run for real in tests/e2e/test_demo.py."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from trapline.base import errors
from trapline.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
HAND_WRITTEN = [REPO / "README.md", *sorted((REPO / "docs" / "guide").glob("*.md")), REPO / "docs" / "architecture.md",
                REPO / "docs" / "extending.md", REPO / "SECURITY.md", REPO / "RELIABILITY.md"]


def code_blocks(path: Path, languages: tuple[str, ...]) -> list[str]:
    return [m.group(2) for m in re.finditer(r"^```(\w*)\n(.*?)^```", path.read_text(), re.S | re.M)
            if m.group(1) in languages]


def shown_commands() -> list[tuple[str, str]]:
    """(page, command line) for every `trapline ...` line of a shell block, continuations joined, comments cut."""
    out = []
    for path in HAND_WRITTEN:
        for block in code_blocks(path, ("bash", "sh", "")):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #", 1)[0].strip().rstrip("&").strip()
                if line.startswith("trapline "):
                    out.append((path.relative_to(REPO).as_posix(), line))
    return out


def test_the_docs_show_commands_at_all():
    pages = {page for page, _ in shown_commands()}
    assert "README.md" in pages and len(pages) >= 6, pages


@pytest.mark.parametrize(("page", "line"), shown_commands())
def test_every_trapline_command_shown_parses(page, line):
    if "..." in line:
        pytest.skip("elides its arguments")
    # usage notation: `[--flag VALUE]` is optional, `--format a|b|c` shows alternatives (the first stands for them)
    line = re.sub(r"\[(--[^\]]+)\]", r"\1", line)
    words = [w.split("|")[0] if "|" in w and not w.startswith(("'", '"')) else w for w in shlex.split(line)[1:]]
    try:
        build_parser().parse_args(words)
    except SystemExit as exc:
        if exc.code != 0:
            pytest.fail(f"{page}: `{line}` does not parse with today's CLI")


def aliases_used_before_promoted() -> list[str]:
    """`NAME@ALIAS` lines a page shows after publishing NAME but before any `trapline models promote` pointed ALIAS at
    it: a reader copying the page in order would get `not_found` (only `latest` follows a publish by itself)."""
    out, published, promoted = [], {}, {}
    for page, line in shown_commands():  # each page's lines in order
        words = shlex.split(line)
        if words[1:3] == ["models", "publish"] and "--name" in words:
            published.setdefault(page, set()).add(words[words.index("--name") + 1])
        elif words[1:3] == ["models", "promote"]:
            alias = words[words.index("--alias") + 1] if "--alias" in words else "production"
            promoted.setdefault(page, set()).update((w.split(":")[0], alias) for w in words[3:] if ":" in w)
        for name, alias in re.findall(r"([\w.-]+)@([\w.-]+)", line):
            if name in published.get(page, ()) and alias != "latest" and (name, alias) not in promoted.get(page, ()):
                out.append(f"{page}: {name}@{alias} in `{line}`")
    return out


def test_an_alias_a_page_uses_is_promoted_after_the_page_publishes():
    assert aliases_used_before_promoted() == []


def test_every_error_class_says_what_it_is_for():
    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, errors.TraplineError) and c.__module__ == errors.__name__]
    assert len(classes) > 30
    for cls in classes:
        assert (cls.__doc__ or "").strip(), f"{cls.__name__} has no docstring: the error reference would be blank"
        assert re.fullmatch(r"[a-z_]+", cls.code), cls


def test_the_reference_pages_generate_and_name_what_the_code_has(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("reference_hook", REPO / "docs" / "hooks" / "reference.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    cli = hook.cli_page()
    assert "## `trapline reprocess`" in cli and "`--archive`" in cli and "## `trapline jobs stop`" in cli
    assert "`max_batch_size`" in hook.config_page()
    http = hook.http_page()
    assert "## `POST /v1/detect`" in http and "## `POST /v1/images`" in http and "## `GET /v1/jobs`" in http
    errs = hook.errors_page()
    assert "| `not_found` | 404 |" in errs and "| `invalid_image` | by reason |" in errs
    assert "`TRAPLINE_MODEL_STORE`" in hook.env_page()
    # a link to a repository file becomes its name; a docs page named from the root is linked from the page
    text = hook.repo_links_as_code("see [the config](../../serve.yaml) and [arch](docs/architecture.md)",
                                   "guide/x.md")
    assert text == "see the config (`serve.yaml`) and [arch](../architecture.md)"


def guide_serve_configs() -> list[tuple[str, dict]]:
    """(page, config) for every serve config (a YAML block with `models:`) the README and the guides show."""
    import yaml

    out = []
    for path in HAND_WRITTEN:
        for block in code_blocks(path, ("yaml", "yml")):
            data = yaml.safe_load(block)
            if isinstance(data, dict) and "models" in data:
                out.append((path.relative_to(REPO).as_posix(), data))
    return out


def test_every_serve_config_the_guides_show_fits_a_two_core_machine():
    """As written, each parses and its replicas fit the local Ray `trapline serve` starts on 2 cores (else it is
    refused before Ray starts: serve/placement.py). The Antenna guide's runs for real in
    tests/integration/test_antenna_door.py."""
    from serve.config import parse_serve_config
    from serve.fit import fit_error
    from serve.placement import config_asks

    shown = guide_serve_configs()
    assert {"docs/guide/antenna.md", "docs/guide/serving.md"} <= {page for page, _ in shown}
    for page, data in shown:
        assert fit_error(config_asks(parse_serve_config(data, page)), {"CPU": 2.0}) is None, page
