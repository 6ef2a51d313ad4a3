"""`make test-room ROOM=...` (tests/rooms.py): a room's tests are those that import it, directly or through the
tests' helpers, those named for it, and for trapline those that run its CLI; a path is its top folder's room."""

from __future__ import annotations

import pytest

from tests import rooms


@pytest.fixture
def tree(tmp_path, monkeypatch):
    files = {
        "tests/fixtures/__init__.py": "",
        "tests/fixtures/helper.py": "def start():\n    from serve.local import run_local\n",
        "tests/unit/test_through_helper.py": "from tests.fixtures.helper import start\n",
        "tests/unit/test_batch_only.py": "from batch.jobs.control import JobControl\nimport model_store\n",
        "tests/integration/test_serve_cli.py": "import httpx\n",
        "tests/e2e/test_runs_the_cli.py": 'import sys\nCMD = [sys.executable, "-m", "trapline.cli", "serve"]\n',
        "tests/e2e/test_relative.py": "from . import helpers\nimport servers\n",  # neither is the room
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(rooms, "REPO", tmp_path)
    monkeypatch.setattr(rooms, "TESTS", tmp_path / "tests")
    return tmp_path


def test_a_room_takes_the_tests_that_import_it_directly_or_through_a_helper_and_those_named_for_it(tree):
    assert rooms.room_tests("serve") == {"unit": ["tests/unit/test_through_helper.py"],
                                         "ray": ["tests/integration/test_serve_cli.py"]}
    assert rooms.room_tests("batch") == {"unit": ["tests/unit/test_batch_only.py"], "ray": []}
    assert rooms.room_tests("model_store") == {"unit": ["tests/unit/test_batch_only.py"], "ray": []}
    # the CLI is trapline's: a test running it as a subprocess is in trapline's room
    assert rooms.room_tests("trapline") == {"unit": [], "ray": ["tests/e2e/test_runs_the_cli.py"]}


@pytest.mark.parametrize("arg, room", [("serve", "serve"), ("serve/local.py", "serve"), ("./batch/jobs/", "batch"),
                                       ("model_store/tables/reader.py", "model_store")])
def test_a_changed_file_is_in_its_top_folders_room(arg, room):
    assert rooms.room_of(arg) == room


def test_a_path_in_no_room_is_a_clear_error_with_exit_2(capsys):
    assert rooms.main(["docs/guide/development.md"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 'docs/guide/development.md' is in no room: give one of serve, batch, model_store")


def test_list_prints_the_rooms_files_of_this_repository(capsys):
    assert rooms.main(["serve/local.py", "--list"]) == 0
    listed = capsys.readouterr().out.split()
    assert "tests/integration/test_serve_http.py" in listed and "tests/unit/test_deployments_http.py" in listed
    assert "tests/unit/test_batch_listing.py" not in listed  # batch and model_store only
    assert all(path.startswith("tests/") and path.endswith(".py") for path in listed)
