"""The docs cannot drift from the code: every `trapline` command the README and every docs page show (shell and
console blocks, cron lines, inline code) parses with today's CLI, a page that publishes a model promotes it before
naming it by alias, every error class documents itself (the generated error page lists them all), and the reference
pages generate. The README's archive commands and the guide's Python blocks run for real in tests/e2e/test_demo.py."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from ground import errors
from trapline.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
HAND_WRITTEN = [REPO / "README.md", *sorted((REPO / "docs" / "guide").glob("*.md")), REPO / "docs" / "architecture.md",
                REPO / "docs" / "extending.md", REPO / "SECURITY.md", REPO / "RELIABILITY.md"]
# What a docs build writes (docs/hooks/reference.py; .gitignore's list) is left out: the reference pages print the
# parser's own usage lines, and the rest are copies of README.md, SECURITY.md, RELIABILITY.md and BENCHMARKS.md.
GENERATED = {"index.md", "benchmarks.md", "security.md", "reliability.md"}
DOCS = [REPO / "README.md",
        *sorted(p for p in (REPO / "docs").rglob("*.md")
                if not (p.parent == REPO / "docs" and p.name in GENERATED) and "reference" not in p.parts[-2:-1]),
        REPO / "SECURITY.md", REPO / "RELIABILITY.md"]


def code_blocks(path: Path, languages: tuple[str, ...]) -> list[str]:
    return [m.group(2) for m in re.finditer(r"^```(\w*)\n(.*?)^```", path.read_text(), re.S | re.M)
            if m.group(1) in languages]


SHELL_BLOCKS = ("bash", "sh", "shell", "console", "cron", "text", "")
ELIDED = ("…", "...")


def _split_commands(line: str) -> list[str]:
    """A shell line cut at its unquoted ` | `, ` || `, ` && ` and `;` (each piece one command)."""
    pieces, quote, start = [], "", 0
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == ";" or (ch in "|&" and line[i - 1:i] == " " and line[i + 1:i + 2] in (" ", ch)):
            pieces.append(line[start:i])
            start = i + 1
    return [p.strip(" |&;") for p in [*pieces, line[start:]] if p.strip(" |&;")]


def _trapline_call(words: list[str], commands: set[str]) -> list[str] | None:
    """The `trapline COMMAND ...` words of a shell command, after what runs it: a prompt, `VAR=value`s, a cron time,
    `docker compose exec SERVICE`, `ray job submit --`..."""
    for i, word in enumerate(words[:-1]):
        if word == "trapline" and words[i + 1] in commands:
            return words[i:]
    return None


def shown_commands() -> list[tuple[str, str, bool]]:
    """(page, command line, partial) for every `trapline COMMAND ...` the README and the docs show: in a shell block
    (continuations joined, comments and `$ ` prompts cut, pipes and `&&` split, what runs it dropped), and in prose as
    inline code. Partial: inline code, or a line that elides words (`…`): it may leave out what a command needs, but
    each word it shows must be one the command takes."""
    commands = set(_subcommands(build_parser()))
    out = []
    for path in DOCS:
        page, text = path.relative_to(REPO).as_posix(), path.read_text()
        for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
            if m.group(1) not in SHELL_BLOCKS:
                continue
            for line in m.group(2).replace("\\\n", " ").splitlines():
                line = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip()
                if "`" in line:  # a layout block's prose: its inline code is read below
                    continue
                for piece in _split_commands(line.removeprefix("$ ")):
                    try:
                        words = _trapline_call(shlex.split(piece), commands)
                    except ValueError:  # an apostrophe of prose in a text block
                        continue
                    if words:
                        out.append((page, shlex.join(words), any(e in w for w in words for e in ELIDED)))
        prose = re.sub(r"^```.*?^```", lambda b: "\n".join(re.findall(r"`[^`\n]+`", b.group(0))), text,
                       flags=re.S | re.M)
        for m in re.finditer(r"`(trapline [^`]+)`", prose):
            try:
                words = shlex.split(m.group(1))
            except ValueError:
                continue
            if words[1] in commands:
                out.append((page, shlex.join(words), True))
    return out


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))


class _RefusedError(Exception):
    pass


def _refuse(self, message):
    raise _RefusedError(message)


# A page may show a command that exists only after the reader follows it: extending.md's filter, once registered.
NOT_YET = {("docs/extending.md", "--filter edge")}
PLACEHOLDER = re.compile(r"[A-Z][A-Z_]*|<[^>]+>|…|\.\.\.")  # NAME, <hash>, an elided value


def _usage_words(line: str, partial: bool) -> list[str]:
    """The words a reader would type for `line`: usage notation read as its first choice (`[--flag VALUE]` and
    `[WORD]` optional, shown; `--format a|b|c` and, in prose, `list/show/verify`: the first stands for them)."""
    words = []
    for w in shlex.split(line)[1:]:
        if "[" not in w[1:]:
            w = re.sub(r"^\[(?=[\w-])", "", w)
        if "[" not in w:
            w = re.sub(r"(?<=[\w.…])\]$", "", w)
        if "|" in w and not w.startswith(("{", "[")):
            w = w.split("|")[0]
        if partial and re.fullmatch(r"[a-z-]+(/[a-z-]+)+", w):
            w = w.split("/")[0]
        words.append(w)
    return words


def refusal(page: str, line: str, partial: bool) -> str | None:
    """Why `line` does not parse with today's CLI (None: it does). Placeholders (NAME, <hash>, …) stand for a
    value, not a choice; a partial line may miss required arguments and the values it elides."""
    if any(page == p and cut in line for p, cut in NOT_YET):
        return None
    words = [w for w in _usage_words(line, partial) if not (partial and w in ELIDED)]
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(io.StringIO()):
        mp.setattr(argparse.ArgumentParser, "error", _refuse)
        try:
            build_parser().parse_args(words)
        except _RefusedError as exc:
            message = str(exc)
        except SystemExit as exc:  # --help
            return None if exc.code == 0 else f"exit {exc.code}"
        else:
            return None
    choice = re.search(r"invalid choice: '([^']*)'", message)
    if choice and PLACEHOLDER.fullmatch(choice.group(1)):
        return None
    if partial and re.search(r"the following arguments are required|expected (one|at least one) argument", message):
        return None
    return message


def test_the_docs_show_commands_at_all():
    shown = shown_commands()
    pages = {page for page, _, _ in shown}
    assert "README.md" in pages and len(pages) >= 6, pages
    lines = {line for _, line, _ in shown}
    # a console block's prompt, a cron line's variables, `docker compose exec trapline`, inline code
    assert any(line.startswith("trapline health --tables /data/tables") for line in lines)
    assert any(line.startswith("trapline jobs submit reprocess") for _, line, partial in shown if not partial)
    assert sum(partial for _, _, partial in shown) > 50


def test_the_check_refuses_what_cannot_run():
    page = "docs/x.md"
    assert "unrecognized" in refusal(page, "trapline reprocess /mnt/nas/traps --out d --model md@production", False)
    assert "unrecognized" in refusal(page, "trapline reprocess --archive a --out b --model m --no-such-flag", True)
    assert refusal(page, "trapline no-such-command", True)
    assert "required" in refusal(page, "trapline people add --role admin", False)  # NAME is required
    assert refusal(page, "trapline people add --role admin", True) is None
    assert refusal(page, "trapline reprocess --archive … --out … --model md [--dry-run]", True) is None
    assert refusal(page, "trapline people add NAME --role ROLE", False) is None
    assert "invalid choice" in refusal(page, "trapline people add ana --role boss", False)
    assert "invalid choice" in refusal(page, "trapline postprocess --filter edge", True)


@pytest.mark.parametrize(("page", "line", "partial"), shown_commands())
def test_every_trapline_command_shown_parses(page, line, partial):
    why = refusal(page, line, partial)
    assert why is None, f"{page}: `{line}` does not parse with today's CLI: {why}"


def aliases_used_before_promoted() -> list[str]:
    """`NAME@ALIAS` lines a page shows after publishing NAME but before any `trapline models promote` pointed ALIAS at
    it: a reader copying the page in order would get `not_found` (only `latest` follows a publish by itself)."""
    out, published, promoted = [], {}, {}
    for page, line, _ in shown_commands():  # each page's lines in order
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
