"""The local backend: prepare the environment, run the command in its own process group.

* The child runs in the project directory, in a new session/process group, with the run's
  ``MLFLOW_*`` variables; its output goes straight to our stdout/stderr (no buffering).
* ``cancel()`` forwards SIGTERM (or the signal we received) to the whole group, waits a grace
  period (``MLPROJ_KILL_GRACE``, default 10 s), then SIGKILLs the group; the run ends KILLED.
* A monitor thread records the terminal status even if nobody calls ``wait()``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from mlproj.backends import FAILED, FINISHED, KILLED, RUNNING, Launch, SubmittedRun
from mlproj.envs import EnvContext, prepare
from mlproj.errors import EnvError

DEFAULT_GRACE = 10.0


def _grace() -> float:
    try:
        return float(os.environ.get('MLPROJ_KILL_GRACE', DEFAULT_GRACE))
    except ValueError:
        return DEFAULT_GRACE


def child_environment(launch: Launch) -> dict[str, str]:
    env = dict(os.environ)
    # The run's own experiment id is authoritative; a leftover name would contradict it.
    env.pop('MLFLOW_EXPERIMENT_NAME', None)
    # mlproj's own Git credential is for fetching sources, never for project code.
    env.pop('MLPROJ_GIT_TOKEN', None)
    env.pop('MLFLOW_GIT_PASSWORD', None)
    env.update(launch.run_env)
    return env


class LocalSubmittedRun(SubmittedRun):
    def __init__(self, launch: Launch, proc: subprocess.Popen, env_tag: str | None) -> None:
        super().__init__(launch.run_id)
        self.launch = launch
        self.command_proc = proc
        self._status = RUNNING
        self._cancel_signal: int | None = None
        self._done = threading.Event()
        self._cancelled = threading.Event()  # set once a cancel has finished killing the group
        self._lock = threading.Lock()
        self._monitor = threading.Thread(target=self._watch, name=f'mlproj-run-{launch.run_id}', daemon=True)
        self._monitor.start()

    # -- status ---------------------------------------------------------------------------
    def _watch(self) -> None:
        code = self.command_proc.wait()
        with self._lock:
            cancelled = self._cancel_signal is not None
        if cancelled:
            status = KILLED
            self.exit_code = 128 + (self._cancel_signal or signal.SIGTERM)
        elif code == 0:
            status = FINISHED
            self.exit_code = 0
        else:
            status = FAILED
            self.exit_code = code if code > 0 else 128 - code
        try:
            self._record(status)
        finally:
            self.launch.source.cleanup()
            self._status = status
            self._done.set()

    def _record(self, status: str) -> None:
        from mlproj.tracking import record_terminal_status

        problem = record_terminal_status(self.launch.tracker, self.run_id, status)
        if problem:
            print(f'mlproj: warning: {problem}', file=sys.stderr)

    def wait(self, timeout: float | None = None) -> bool:
        self._done.wait(timeout)
        if self._done.is_set() and self._cancel_signal is not None:
            self._cancelled.wait(timeout)  # leftovers of the group must be gone before we return
        return self._status == FINISHED

    def get_status(self) -> str:
        return self._status

    # -- cancellation ---------------------------------------------------------------------
    def cancel(self, sig: int = signal.SIGTERM) -> None:
        if self._done.is_set() and self._cancel_signal is None:
            return
        with self._lock:
            if self._cancel_signal is None:
                self._cancel_signal = sig
        pgid = self.command_proc.pid
        try:
            _signal_group(pgid, sig)
            deadline = time.monotonic() + (0 if sig == signal.SIGKILL else _grace())
            while time.monotonic() < deadline:
                if self.command_proc.poll() is not None and not _group_alive(pgid):
                    break
                time.sleep(0.05)
            _signal_group(pgid, signal.SIGKILL)
            self._done.wait()
        finally:
            self._cancelled.set()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def spawn(launch: Launch, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    stdin = subprocess.DEVNULL if sys.stdin is None or _isatty(sys.stdin) else None
    try:
        return subprocess.Popen(argv, cwd=str(launch.project_dir), env=env, start_new_session=True, stdin=stdin)
    except OSError as e:
        raise EnvError(f'cannot start {argv[0]!r}: {e.strerror}', str(launch.project_dir)) from None


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (ValueError, AttributeError):
        return False


def submit(launch: Launch) -> LocalSubmittedRun:
    ctx = EnvContext(
        docker_args=launch.request.docker_args,
        build_image=launch.request.build_image,
        tracking_uri=launch.tracking_uri,
        run_id=launch.run_id,
        experiment_id=launch.experiment_id,
    )
    environment = prepare(launch.project, launch.env_manager, ctx)
    tags = {}
    if environment.tag:
        tags['mlflow.project.env'] = environment.tag
    if environment.hash:
        tags['mlproj.env.hash'] = environment.hash
    tags.update(getattr(environment, 'extra_tags', None) or {})  # e.g. docker image uri/id
    if tags:
        launch.tracker.set_tags(launch.run_id, tags)
    argv, env = environment.argv(launch.command, child_environment(launch), launch.project_dir)
    print(f"=== Running command '{launch.command}' in run with ID '{launch.run_id}' ===", file=sys.stderr,
          flush=True)
    sys.stdout.flush()
    proc = spawn(launch, argv, env)
    return LocalSubmittedRun(launch, proc, environment.tag)
