"""serve.local.wait_ready gives up as soon as the service it waits for has exited (a failed deploy answers nothing)."""

import subprocess
import sys
import time

import pytest

from ground.errors import ServeStartError
from serve.local import free_port, wait_ready


def test_a_service_that_exited_is_not_waited_for():
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    timeout_s = 60
    t0 = time.monotonic()
    with pytest.raises(ServeStartError, match=r"the service exited before http://127\.0\.0\.1:\d+/readyz answered "
                                              r"200; last answer: no answer"):
        wait_ready(f"http://127.0.0.1:{free_port()}", timeout_s=timeout_s, alive=lambda: proc.poll() is None)
    # the message says it saw the exit (a timeout says "timed out after"); and well before its own timeout
    assert time.monotonic() - t0 < timeout_s / 2


def test_without_alive_it_waits_out_its_timeout_and_says_the_last_answer():
    with pytest.raises(ServeStartError, match=r"timed out after 1 s waiting for .*/readyz; last answer: ConnectError"):
        wait_ready(f"http://127.0.0.1:{free_port()}", timeout_s=1)
