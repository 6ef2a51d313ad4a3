"""The runtime helpers without starting Ray: the reachability probe, quiet capture of fd 2, and the help."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time

import pytest

from batch.commands import COMMANDS
from ground import ray_output
from ground.ray_runtime import RayUnreachableError, _dial_target, check_reachable
from tests.conftest import free_port
from trapline import cli


def test_a_closed_port_is_unreachable_at_once():
    port = free_port()
    with pytest.raises(RayUnreachableError) as info:
        check_reachable(f"ray://127.0.0.1:{port}")
    # at once: refused by the port, not given up on after the probe's timeout (its message says "within")
    assert "Connection refused" in str(info.value) and "within" not in str(info.value)
    assert str(info.value).startswith(f"cannot reach the Ray cluster at ray://127.0.0.1:{port}: ")
    assert "\n" not in str(info.value)


def _server(reply: bytes | None, until: threading.Event | None = None) -> tuple[socket.socket, threading.Thread]:
    """A loopback server that accepts one connection and answers `reply` (None: says nothing), then holds the
    connection for a second, or until `until` is set."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.recv(64)
            if reply is not None:
                conn.sendall(reply)
            if until is None:
                time.sleep(1)
            else:
                until.wait(60)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return srv, thread


def test_a_grpc_server_is_reachable():
    srv, thread = _server(bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))  # an empty HTTP/2 SETTINGS frame, as gRPC sends
    with srv:
        check_reachable(f"ray://127.0.0.1:{srv.getsockname()[1]}")
        thread.join()


def test_a_port_that_accepts_but_never_answers_is_unreachable():
    held = threading.Event()
    srv, thread = _server(None, until=held)
    with srv:
        with pytest.raises(RayUnreachableError, match="no Ray \\(gRPC\\) answer"):
            check_reachable(f"ray://127.0.0.1:{srv.getsockname()[1]}", timeout_s=0.5)
        # it gave up on its own timeout while the server still held the connection open (not when it closed)
        assert not held.is_set() and thread.is_alive()
        held.set()
        thread.join()


def test_dial_targets():
    assert _dial_target("ray://10.0.0.5:10001") == ("10.0.0.5", 10001)
    assert _dial_target("ray://[::1]:10001/ns") == ("::1", 10001)
    with pytest.raises(RayUnreachableError, match="not a HOST:PORT"):
        check_reachable("ray://nowhere")


def test_quiet_capture_sends_fd2_to_the_session_file_and_keeps_the_console(tmp_path, capfd):
    ray_output.set_quiet(True)
    try:
        ray_output.capture_start()
        os.write(2, b"before the session exists\n")
        ray_output.capture_attach(str(tmp_path))
        os.write(2, b"[2026-01-01 00:00:00,000 E 1 1] core_worker.cc:1: noise\n")
        print("processed 3/3", file=ray_output.console(), flush=True)
    finally:
        ray_output.release()
        ray_output.set_quiet(False)
    print("after", file=sys.stderr)
    err = capfd.readouterr().err
    assert "core_worker" not in err and "before the session" not in err
    assert f"Ray logs: {tmp_path}" in err and "processed 3/3" in err and "after" in err
    [log] = tmp_path.glob("trapline_driver_*.err")
    assert log.read_text().splitlines() == ["before the session exists",
                                            "[2026-01-01 00:00:00,000 E 1 1] core_worker.cc:1: noise"]


def test_a_second_ray_session_in_one_process_moves_the_capture_to_its_own_logs(tmp_path, capfd):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    ray_output.set_quiet(True)
    try:
        ray_output.capture_start()
        ray_output.capture_attach(str(first))
        os.write(2, b"first session\n")
        ray_output.capture_attach(str(second))  # Ray shut down and started again without a release
        os.write(2, b"second session\n")
    finally:
        ray_output.release()
        ray_output.set_quiet(False)
    assert next(first.glob("*.err")).read_text() == "first session\n"
    assert next(second.glob("*.err")).read_text() == "second session\n"
    assert f"Ray logs: {second}" in capfd.readouterr().err


def test_not_quiet_means_no_capture(capfd):
    ray_output.capture_start()
    assert ray_output.console() is sys.stderr
    ray_output.release()


def test_help_opens_with_what_trapline_does_and_every_command_has_an_example():
    parser = cli.build_parser()
    top = parser.format_help()
    assert "Run object detectors over camera-trap images" in top.split("\n\n")[1]
    assert "registers" not in top and "trapline reprocess --archive" in top
    examples = {**cli.EXAMPLES, **{name: c.example for name, c in COMMANDS.items() if c.example}}
    commands = [*examples, "models publish", "models quantize"]  # these two carry their own examples
    sub = next(a for a in parser._actions if a.dest == "command")
    for path in commands:
        p = sub.choices[path.split()[0]]
        for part in path.split()[1:]:
            p = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices[part]
        text = p.format_help()
        assert p.description, path
        want = f"example:\n  {examples[path]}" if path in examples else f"examples:\n  trapline {path}"
        assert want in text, path
    assert set(sub.choices) <= {c.split()[0] for c in commands}


def test_verbose_flag_before_or_after_the_command():
    parser = cli.build_parser()
    assert parser.parse_args(["-v", "models", "list"]).verbose is True
    assert parser.parse_args(["models", "list", "-v"]).verbose is True
    assert "verbose" not in vars(parser.parse_args(["models", "list"]))  # commands' options never see it


def test_a_command_run_inside_a_callers_capture_leaves_it_in_place(tmp_path, capfd):
    """A benchmark that runs `batch.reprocess.job` in its own quiet Ray session keeps Ray's output in its file
    after the job returns, also when the job fails with an error a user can act on."""
    import argparse

    from ground.entry import run_command
    from ground.errors import TraplineError

    def fails(args):
        raise TraplineError("no such archive")

    ray_output.set_quiet(True)
    try:
        ray_output.capture_start()
        ray_output.capture_attach(str(tmp_path))
        assert run_command(argparse.Namespace(func=lambda a: 0)) == 0
        assert run_command(argparse.Namespace(func=fails)) == 2
        assert ray_output.capturing() and ray_output.is_quiet()
        os.write(2, b"ray noise after the jobs\n")
    finally:
        ray_output.release()
        ray_output.set_quiet(False)
    err = capfd.readouterr().err
    assert "ray noise" not in err
    [log] = tmp_path.glob("trapline_driver_*.err")
    assert "ray noise after the jobs" in log.read_text()


def test_a_command_of_its_own_gives_fd2_and_the_mode_back(capfd):
    import argparse

    from ground.entry import run_command

    def starts_a_capture(args):
        assert ray_output.is_quiet()  # quiet while it runs (no -v)
        ray_output.capture_start()
        return 0

    try:
        assert run_command(argparse.Namespace(func=starts_a_capture)) == 0
        assert not ray_output.capturing()
        assert not ray_output.is_quiet()  # the caller's mode (verbose, a library's default) is back
    finally:
        ray_output.release()
        ray_output.set_quiet(False)
    os.write(2, b"on the terminal\n")
    assert "on the terminal" in capfd.readouterr().err
