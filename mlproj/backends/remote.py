"""What every remote backend (Ray, Slurm, Kubernetes, MLflow plugins) shares.

A backend module submits its job, then hands a small ``RemoteJob`` object (its hooks: ``state``
to poll, ``follow_logs``, ``stop``/``kill`` to cancel) to ``RemoteSubmittedRun``, which runs the
shared lifecycle of ``mlproj.backends.lifecycle`` the same way for every engine:

* a monitor thread polls ``job.state()`` (and a second thread follows the job's output) until the
  engine reports a terminal state, then records FINISHED / FAILED / KILLED in MLflow and sets
  ``exit_code`` (0; the job's exit code or 1; 128 + signal when cancelled);
* ``cancel(sig)`` asks the engine to stop the job, waits until the engine confirms (at most
  ``MLPROJ_CANCEL_TIMEOUT`` seconds, default 60) and records KILLED; a second cancel (the CLI sends
  SIGKILL on a second Ctrl-C) escalates with ``job.kill()`` and stops waiting;
* when the engine cannot be reached for ``MLPROJ_LOST_TIMEOUT`` seconds (default 120) the run is
  recorded FAILED with exit code 69: a run is never left RUNNING by a watching mlproj;
* with ``--no-wait`` nothing is watched: ``get_status()`` asks the engine once, ``wait()`` starts
  watching on demand.

It also holds the backend-config validation helpers, so that every backend rejects an unknown or
ill-typed key with one line naming the key.
"""
from __future__ import annotations

import difflib
import signal
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from mlproj.backends import FAILED, FINISHED, KILLED, SCHEDULED, TERMINAL, Launch
from mlproj.backends.lifecycle import (  # noqa: F401  (re-exported for the backends)
    Backoff,
    JobState,
    Lifecycle,
    checked_at_submit,
    say,
    watch,
)
from mlproj.errors import EXIT_BACKEND, BackendError, one_line


class RemoteJob(Protocol):
    """The hooks of one engine's job; ``RemoteSubmittedRun`` does the rest of the lifecycle."""

    description: str             # e.g. "Ray job 'mlproj-abc'" (used in messages)

    def state(self) -> JobState:
        """Poll the engine once (raises when it cannot be reached)."""
        ...

    def follow_logs(self, ended: threading.Event) -> None:
        """Copy the job's output to our stdout.  ``ended`` is set once the engine reports the job
        terminal: copy what is left and return (the monitor waits ``MLPROJ_LOG_DRAIN_TIMEOUT`` s)."""
        ...

    def stop(self) -> None:
        """Ask the engine to cancel the job (graceful)."""
        ...

    def kill(self) -> None:
        """Ask the engine to cancel the job without grace (second Ctrl-C)."""
        ...


def _env_float(name: str) -> float:
    from mlproj.settings import env_value

    return float(env_value(name))


class RemoteSubmittedRun(Lifecycle):
    def __init__(self, launch: Launch, job: RemoteJob, *, poll_interval: float = 1.0,
                 follow_logs: bool = True) -> None:
        super().__init__(launch, status=SCHEDULED)
        self.job = job
        self.poll_interval = poll_interval
        self._follow = follow_logs
        self._lock = threading.Lock()
        self._wake = threading.Event()        # set to make the monitor poll right away
        self._ended = threading.Event()       # the engine reported a terminal state
        self._monitor: threading.Thread | None = None
        self._log_thread: threading.Thread | None = None

    # -- watching -------------------------------------------------------------------------
    def start(self, *, logs: bool = True) -> RemoteSubmittedRun:
        with self._lock:
            if self._monitor is not None:
                return self
            if self._follow and logs:
                self._log_thread = threading.Thread(target=self._logs, name=f'mlproj-logs-{self.run_id}',
                                                    daemon=True)
                self._log_thread.start()
            self._monitor = threading.Thread(target=self._watch, name=f'mlproj-watch-{self.run_id}', daemon=True)
            self._monitor.start()
        return self

    def _logs(self) -> None:
        try:
            self.job.follow_logs(self._ended)
        except Exception as e:  # logs are a convenience; the status is what matters
            say(f'mlproj: warning: stopped following the output of {self.job.description}: {one_line(e)}')
        finally:
            self._wake.set()  # the output usually ends when the job does: poll now

    def _watch(self) -> None:
        state = watch(self.job.state, lambda s: s.status in TERMINAL, wake=self._wake,
                      backoff=Backoff(self.poll_interval), done=self._done, on_state=self._on_state,
                      lost_timeout=_env_float('MLPROJ_LOST_TIMEOUT'), lost=_lost, description=self.job.description)
        if state is not None:
            self._finish(state)

    def _on_state(self, state: JobState) -> None:
        if state.status not in TERMINAL and self._status not in TERMINAL:
            self._status = state.status

    def _finish(self, state: JobState) -> None:
        self._ended.set()
        if self._log_thread is not None and self._log_thread is not threading.current_thread():
            self._log_thread.join(_env_float('MLPROJ_LOG_DRAIN_TIMEOUT'))  # print the tail first
        self.end(state)

    def before_record(self, final: JobState, context: Any) -> None:
        if final.detail and final.status != FINISHED:
            say(f'mlproj: {self.job.description}: {final.detail}')

    def on_finished(self, final: JobState) -> None:
        """Clean-up hook of subclasses, run after the status is recorded and before ``wait()`` returns
        (the checkout was cleaned up once the engine had the code)."""

    # -- SubmittedRun -----------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> bool:
        self.start()
        return super().wait(timeout)

    def get_status(self) -> str:
        if self._monitor is None and not self._done.is_set():
            try:
                return self.job.state().status
            except Exception as e:
                raise BackendError(f'cannot get the state of {self.job.description}: {one_line(e)}') from None
        return self._status

    def cancel(self, sig: int = signal.SIGTERM) -> None:
        if self._done.is_set():
            return
        first = self.note_cancel(sig)
        try:
            if first and sig != signal.SIGKILL:
                self.job.stop()
            else:
                self.job.kill()
        except Exception as e:
            say(f'mlproj: warning: could not cancel {self.job.description}: {one_line(e)}')
        self.start(logs=False)  # a run submitted with --no-wait: watch it end, don't replay its output
        self._wake.set()
        if not first or sig == signal.SIGKILL:
            self._done.wait(5.0)
        else:
            self._done.wait(_env_float('MLPROJ_CANCEL_TIMEOUT'))
        if not self._done.is_set():
            say(f'mlproj: warning: {self.job.description} did not confirm the cancellation; recording the run KILLED')
            self._finish(JobState(KILLED, None, 'cancellation not confirmed by the engine'))


def cancel_job(job: RemoteJob) -> str:
    """Stop a job another process submitted (``Backend.cancel_recorded``) through its ``stop``
    hook, unless the engine says it already ended; one-line BackendError when it refuses."""
    try:
        state: JobState | None = job.state()
    except Exception:
        state = None  # unknown: try to stop it anyway
    if state is not None and state.status in TERMINAL:
        return f'{job.description} already ended {state.status}'
    try:
        job.stop()
    except BackendError:
        raise
    except Exception as e:
        raise BackendError(f'cannot cancel {job.description}: {one_line(e)}') from None
    return f'cancelled {job.description}'


def _lost(e: BaseException, timeout: float) -> JobState:
    return JobState(FAILED, EXIT_BACKEND, f'lost contact with the engine for {timeout:.0f} s: {one_line(e)}')



# --------------------------------------------------------------------------------------------
# backend config validation


class Key:
    """One accepted backend-config key: a checker returns the normalised value or raises ValueError."""

    def __init__(self, check: Callable[[Any], Any], help: str) -> None:  # noqa: A002
        self.check = check
        self.help = help


def validate_config(config: Mapping[str, Any], keys: Mapping[str, Key], backend: str,
                    *, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check every key of ``config`` against ``keys``; one-line BackendError naming the first bad key."""
    out: dict[str, Any] = {}
    where = f'{backend} backend config'
    for name, value in config.items():
        if name in ignore:
            continue
        key = keys.get(name)
        if key is None:
            close = difflib.get_close_matches(str(name), list(keys), n=1)
            hint = f' (did you mean {close[0]!r}?)' if close else ''
            raise BackendError(f'unknown key {name!r}{hint}; known keys: ' + ', '.join(sorted(keys)), where)
        try:
            out[name] = key.check(value)
        except (ValueError, TypeError) as e:
            raise BackendError(f'key {name!r}: {e} (expected {key.help}, got {value!r:.80})', where) from None
    return out


def is_str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError('must be a non-empty string')
    if any(ord(c) < 32 for c in value):
        raise ValueError('must not contain control characters')
    return value


def is_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError('must be true or false')
    return value


def is_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError('must be a non-negative number')
    return value


def is_positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError('must be a positive integer')
    return value


def is_mapping(value: Any) -> dict:
    if not isinstance(value, dict):
        raise ValueError('must be a JSON object')
    return value


def is_str_list(value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError('must be a list of strings')
    return list(value)
