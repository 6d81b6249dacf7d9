"""The run lifecycle every backend shares: submit -> watch -> terminal status -> cleanup.

The runner creates the MLflow run and hands it to ``backend.submit``; what the backend returns is a
``Lifecycle`` (local, remote engines, Databricks), which owns the run's end from then on:

* ``settle`` maps what the backend observed (the job's status and exit code, and whether we
  cancelled it) to the terminal MLflow status and the process-style exit code: FINISHED -> 0;
  cancelled by us -> KILLED, 128 + the signal; KILLED by someone else -> 143; FAILED -> the job's
  exit code, or 1 when it has none.
* ``Lifecycle.end`` does it exactly once, whoever gets there first (a monitor thread, ``wait()``,
  or a ``cancel()`` that the engine never confirmed): the backend's last words (``before_record``:
  final output, a reason), the status recorded through ``tracking.record_terminal_status`` (it
  retries a failing store; when it still fails, ``tracking_problem`` says so and the CLI exits
  70), the backend's clean-up (``on_finished``; by default the run's checkout), then ``wait()``
  returns.
* ``watch`` is the poll loop of the backends that ask an engine (remote, Databricks): poll, report
  each state, sleep (a ``Backoff``), wake early when told, give up after ``lost_timeout`` seconds
  of failed polls (the run ends FAILED, exit code 69) or, without one, let the error out.

The backend-specific parts are hooks: how to start, ``poll``/``follow_logs``/``stop`` of a remote
job (``mlproj.backends.remote.RemoteJob``), ``cancel`` and how long it waits, the text of a
tracking problem (``ended_text``).  ``mlproj.backends.signals`` is the other half: the wait with
signal forwarding of the CLI, the CI step and sweeps.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from mlproj.backends import FAILED, FINISHED, KILLED, RUNNING, SubmittedRun
from mlproj.backends.signals import started
from mlproj.errors import one_line

if TYPE_CHECKING:
    from mlproj.backends import Launch

T = TypeVar('T')


@dataclass(frozen=True)
class JobState:
    """A job's state as its engine reports it."""

    status: str                  # one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED
    exit_code: int | None = None  # the job's own exit code when the engine knows it
    detail: str = ''             # the engine's state name / message, for the final line


def settle(status: str, exit_code: int | None, cancel_signal: int | None, *,
           cancel_overrides_success: bool = False) -> tuple[str, int]:
    """(terminal MLflow status, process exit code) of a job that ended with ``status``.

    ``cancel_signal`` is the signal we cancelled with (None: not cancelled).  A job that succeeded
    although cancelled stays FINISHED unless ``cancel_overrides_success`` (a local command that
    exits 0 on SIGTERM was still cancelled)."""
    if cancel_signal is not None and (status != FINISHED or cancel_overrides_success):
        return KILLED, 128 + cancel_signal
    if status == FINISHED:
        return FINISHED, 0
    if status == KILLED:  # cancelled by someone else (scancel, ray job stop, kubectl, the Databricks UI)
        return KILLED, 128 + signal.SIGTERM
    return FAILED, exit_code if exit_code not in (None, 0) else 1


def say(message: str) -> None:
    """A status line of mlproj itself (stderr, like the local backend's ``=== ... ===`` lines)."""
    print(message, file=sys.stderr, flush=True)


class Backoff:
    """Poll intervals: ``first``, growing by ``growth`` up to ``maximum``; ``reset`` on news."""

    def __init__(self, first: float, growth: float = 1.0, maximum: float | None = None) -> None:
        self.first, self.growth = first, growth
        self.maximum = first if maximum is None else maximum
        self.current = first

    def reset(self) -> None:
        self.current = self.first

    def grow(self) -> None:
        self.current = min(self.current * self.growth, self.maximum)


def watch(poll: Callable[[], T], is_terminal: Callable[[T], bool], *, wake: threading.Event, backoff: Backoff,
          done: threading.Event | None = None, deadline: float | None = None,
          on_state: Callable[[T], None] | None = None, lost_timeout: float | None = None,
          lost: Callable[[BaseException, float], T] | None = None, description: str = 'the job') -> T | None:
    """Poll until a terminal state and return it; None when ``done`` is set or ``deadline`` passes.

    A failing ``poll`` raises out of here unless ``lost`` is given: then it is retried (one
    warning) and after ``lost_timeout`` seconds of failures ``lost(error, timeout)`` is returned."""
    failing_since: float | None = None
    while done is None or not done.is_set():
        try:
            state = poll()
            failing_since = None
        except Exception as e:
            if lost is None:
                raise
            timeout = lost_timeout or 0.0
            now = time.monotonic()
            if failing_since is None:
                failing_since = now
                say(f'mlproj: warning: cannot get the state of {description}: {one_line(e)}; retrying')
            if now - failing_since > timeout:
                return lost(e, timeout)
        else:
            if on_state is not None:
                on_state(state)
            if is_terminal(state):
                return state
        wait_for = backoff.current
        if deadline is not None:
            wait_for = min(wait_for, max(0.0, deadline - time.monotonic()))
            if wait_for <= 0:
                return None
        wake.wait(wait_for)
        wake.clear()
        backoff.grow()
    return None


class Lifecycle(SubmittedRun):
    """A submitted run from the backend's hand-over to its recorded end (see the module docstring)."""

    cancel_overrides_success = False  # the local backend: a cancelled command is KILLED even on exit 0

    def __init__(self, launch: Launch, *, status: str = RUNNING) -> None:
        super().__init__(launch.run_id)
        started()  # the job exists: a signal from here on cancels it (mlproj.backends.signals)
        self.launch = launch
        self.tracking_problem: str | None = None
        self.final: JobState | None = None
        self._status = status
        self._cancel_signal: int | None = None
        self._done = threading.Event()
        self._end_lock = threading.Lock()
        self._cancel_lock = threading.Lock()

    # -- cancellation ---------------------------------------------------------------------
    def note_cancel(self, sig: int, *, kill_counts_as_term: bool = True) -> bool:
        """Remember the first cancel's signal; True for the first cancel, False for later ones.
        A SIGKILL first cancel is remembered as SIGTERM unless ``kill_counts_as_term`` is False."""
        with self._cancel_lock:
            if self._cancel_signal is not None:
                return False
            self._cancel_signal = signal.SIGTERM if sig == signal.SIGKILL and kill_counts_as_term else sig
            return True

    @property
    def cancelled(self) -> bool:
        return self._cancel_signal is not None

    # -- the end --------------------------------------------------------------------------
    def end(self, observed: JobState, context: Any = None) -> None:
        """Record the run's end once: settle, ``before_record``, record, ``on_finished``, then done."""
        with self._end_lock:
            if self._done.is_set():
                return
            status, code = settle(observed.status, observed.exit_code, self._cancel_signal,
                                  cancel_overrides_success=self.cancel_overrides_success)
            self.exit_code = code
            self.final = JobState(status, code, observed.detail)
            try:
                self.before_record(self.final, context)
                self.record(status)
            finally:
                self._status = status
                try:
                    self.on_finished(self.final)
                finally:
                    self._done.set()  # last: the CLI may exit as soon as wait() returns

    def record(self, status: str) -> None:
        from mlproj.tracking import record_terminal_status

        problem = record_terminal_status(self.launch.tracker, self.run_id, status)
        if problem:
            self.tracking_problem = f'{problem}; {self.ended_text(status)}'

    # -- hooks ----------------------------------------------------------------------------
    def ended_text(self, status: str) -> str:
        """How the run ended, for the tracking-problem message."""
        return f'the job ended {status} (exit code {self.exit_code})'

    def before_record(self, final: JobState, context: Any) -> None:
        """Last words of the backend (final output, the reason of a failure), before the status is recorded."""

    def on_finished(self, final: JobState) -> None:
        """Clean-up, after the status is recorded and before ``wait()`` returns: the run's checkout."""
        self.launch.source.cleanup()

    # -- SubmittedRun -----------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        self._done.wait(timeout)
        return self._status == FINISHED

    def get_status(self) -> str:
        return self._status


def checked_at_submit(request: Any, tracking_uri: str, project: Any) -> None:  # noqa: ARG001
    """``Backend.validate`` of a backend that checks its config when it submits (local, Ray,
    Slurm, Kubernetes): nothing to check before the run exists."""
    return None
