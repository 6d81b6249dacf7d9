"""Plain helpers every test package shares (ports, processes, projects): imported, never fixtures.

Fixtures live in the ``conftest.py`` files; what a test calls directly lives in this package, so no
test imports from a conftest module (tests/unit/test_no_conftest_imports.py checks it).  Helpers of
one test package live in the module named after it (``tests.helpers.source``, ``.ci``, ``.compat``,
``.lint``, ``.envs``, ``.backends``); the one Git runner every test uses is ``tests.helpers.git``.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The full `mlflow` package (for `mlflow server`) lives in its own venv; .ci/run creates it.
MLFLOW_SERVER_VENV = Path(os.environ.get('MLPROJ_TEST_MLFLOW_VENV', '/tmp/mlproj-test-mlflow-server-venv'))


def free_port(above: int = 0) -> int:
    """A free TCP port on 127.0.0.1 (above ``above``: Ray and Slurm keep low ports for themselves)."""
    while True:
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        if port > above:
            return port


def mlproj_bin() -> str:
    """The `mlproj` console script of the interpreter running the tests."""
    candidate = Path(sys.executable).with_name('mlproj')
    return str(candidate) if candidate.exists() else 'mlproj'


MLPROJ = mlproj_bin()


def mlproj_argv(*args: str) -> list[str]:
    """`python -m mlproj ARGS` with the interpreter running the tests (no console script needed)."""
    return [sys.executable, '-m', 'mlproj', *args]


def run_mlproj(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`mlproj ARGS` as a real subprocess (the current os.environ plus ``env``): exit codes, stdout
    and stderr exactly as a user sees them; no stdin."""
    return subprocess.run([MLPROJ, *args], env={**os.environ, **(env or {})}, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f'server exited early with code {proc.returncode}')
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f'server at {url} not ready after {timeout}s')


def stop_group(proc: subprocess.Popen) -> None:
    """Stop a server started with start_new_session=True, children included."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def interrupt_on_line(proc: subprocess.Popen, marker: str, *, sig: int = signal.SIGINT, timeout: float = 60,
                      settle: float = 0.5) -> tuple[str, str]:
    """Ctrl-C (``sig``) to ``proc`` (text stdout/stderr pipes) once a stdout line holds ``marker``,
    ``settle`` seconds later (the CLI installs its signal handlers after submitting); returns the rest
    of (stdout, stderr).  ``proc`` is killed if anything fails on the way."""
    try:
        deadline = time.monotonic() + timeout
        line = ''
        while marker not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()
        assert marker in line, f'no {marker!r} line on stdout after {timeout}s'
        time.sleep(settle)
        proc.send_signal(sig)
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def signal_once_started(monkeypatch, started, sig: int = signal.SIGTERM) -> None:
    """Make this process's next local runs send themselves ``sig`` once ``started()`` is true (the
    command runs) and before the submission returns: the last steps of a launch."""
    from mlproj.backends import local

    original = local.LocalSubmittedRun.__init__

    def signalled_first(self, *args, **kwargs):
        deadline = time.monotonic() + 60
        while not started():
            assert time.monotonic() < deadline, 'the command never started'
            time.sleep(0.02)
        os.kill(os.getpid(), sig)
        time.sleep(0.05)  # the handler has run by now
        original(self, *args, **kwargs)

    monkeypatch.setattr(local.LocalSubmittedRun, '__init__', signalled_first)


def write_project(directory: Path, mlproject: str | None, files: dict[str, str] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if mlproject is not None:
        (directory / 'MLproject').write_text(mlproject)
    for name, text in (files or {}).items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return directory


def start_mlflow_server(directory: Path, port: int, *store_args: str, timeout: float = 240) -> subprocess.Popen:
    """A real `mlflow server` on 127.0.0.1:``port`` with its sqlite store in ``directory`` (its log
    appended to ``directory/server.log``), once it answers /health; ``store_args`` choose the
    artifact store (``--default-artifact-root D`` or ``--serve-artifacts ...``).  Stop it with
    ``stop_group``."""
    exe = MLFLOW_SERVER_VENV / 'bin' / 'mlflow'
    assert exe.exists(), f'{exe} missing: .ci/run installs the full mlflow package there'
    with open(directory / 'server.log', 'ab') as log:
        proc = subprocess.Popen(
            [str(exe), 'server', '--host', '127.0.0.1', '--port', str(port),
             '--backend-store-uri', f'sqlite:///{directory}/server.db', *store_args, '--workers', '1'],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=directory,
            # MLflow 3 starts a job runner with about ten huey worker processes by default; the
            # tests use none of its jobs, and on two cores they slow everything else down.
            env={**os.environ, 'MLFLOW_SERVER_ENABLE_JOB_EXECUTION': 'false'},
        )
    try:
        wait_http(f'http://127.0.0.1:{port}/health', proc, timeout)
    except BaseException:
        stop_group(proc)
        raise
    return proc
