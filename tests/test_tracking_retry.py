"""The end of a run is recorded even if the tracking server goes away for a while.

A real ``mlflow server`` (sqlite backend) is killed while the run's command runs; the command
then ends.  (a) The server comes back on the same port within MLPROJ_TRACKING_RETRY_SECONDS: the
status is recorded and mlproj exits with the command's code.  (b) It does not: mlproj exits 70
(tracking) and the message says how the command ended.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlproj.tracking import record_terminal_status
from tests.helpers import (
    free_port,
    mlproj_bin,
    start_mlflow_server,
    stop_group,
    write_project,
)


class Server:
    def __init__(self, base: Path) -> None:
        self.base, self.port, self.proc = base, free_port(), None
        self.uri = f'http://127.0.0.1:{self.port}'

    def start(self) -> None:
        self.proc = start_mlflow_server(self.base, self.port, '--default-artifact-root', str(self.base / 'artifacts'),
                                        timeout=300)

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def start_run(tmp_path: Path, server: Server, retry: str, code: int):
    go = tmp_path / 'go'
    started = tmp_path / 'started'
    proj = write_project(tmp_path / 'p', 'entry_points:\n  main:\n    command: "'
                         f'{sys.executable} -c \'import os, sys, time\\nopen(sys.argv[1], \\"w\\").close()\\n'
                         f'while not os.path.exists(sys.argv[2]): time.sleep(0.05)\\nsys.exit({code})\' '
                         f'{started} {go}"\n')
    env = {**os.environ, 'MLFLOW_TRACKING_URI': server.uri, 'MLPROJ_TRACKING_RETRY_SECONDS': retry}
    proc = subprocess.Popen([mlproj_bin(), 'run', str(proj)], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not started.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc, go


def only_run(uri: str):
    from mlflow.tracking import MlflowClient

    (run,) = MlflowClient(uri).search_runs(['0'])
    return run


@pytest.mark.slow
def test_server_restarted_within_the_window_gets_the_status(tmp_path, server):
    proc, go = start_run(tmp_path, server, retry='300', code=0)
    server.stop()
    go.touch()
    time.sleep(2)                     # the command is over and the first attempts fail
    assert proc.poll() is None
    server.start()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert 'succeeded' in err and 'could not record' not in err
    assert only_run(server.uri).info.status == 'FINISHED'


@pytest.mark.slow
def test_server_gone_for_good_exits_70_with_the_commands_status(tmp_path, server):
    proc, go = start_run(tmp_path, server, retry='3', code=0)
    server.stop()
    go.touch()
    started = time.monotonic()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 70, err
    line = [x for x in err.splitlines() if x.startswith('mlproj: error:')]
    assert len(line) == 1 and 'could not record status FINISHED' in line[0], err
    assert "the run's command exited with code 0" in line[0] and 'retried for 3 s' in line[0]
    assert 'succeeded' not in err and 'Traceback' not in err
    assert time.monotonic() - started < 60


class Flaky:
    """A tracker whose set_status fails ``failures`` times (unit check of the backoff loop)."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    def set_status(self, run_id, status):
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError('store down')


def test_backoff_is_bounded_and_doubles():
    slept: list[float] = []
    assert record_terminal_status(Flaky(3), 'r', 'FAILED', retry_seconds=60, sleep=slept.append) is None
    assert slept == [0.5, 1.0, 2.0]
    slept.clear()
    flaky = Flaky(10 ** 6)
    t0 = time.monotonic()
    problem = record_terminal_status(flaky, 'r', 'KILLED', retry_seconds=0.3, sleep=time.sleep)
    assert time.monotonic() - t0 < 2 and flaky.calls >= 2
    assert problem.startswith('could not record status KILLED for run r (retried for 0.3 s): store down')
