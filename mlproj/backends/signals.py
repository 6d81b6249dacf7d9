"""Waiting for a submitted run with signal forwarding: ``mlproj run`` and ``mlproj ci run``.

``Signals(signums)`` is entered before the run is submitted and left once it is over, so there is
no moment in which a signal would kill mlproj without cancelling the run:

* while the run is being prepared and submitted (an environment build, an upload), a signal raises
  ``Interrupted`` (a ``KeyboardInterrupt``) in the main thread; the runner ends an already created
  run KILLED on the way out and the caller exits 128 + the signal;
* once the backend starts the run's command or job, it calls ``started()``: from then on a signal
  is held, not raised, and ``wait()`` cancels the run with it first thing.  Without that, a signal
  in the last steps of a submission (the monitor thread's start, the caller's bookkeeping) would
  end mlproj as if nothing had started, with the command already running;
* ``wait(submitted)``: the first signal cancels the run through its backend (``cancel(signum)``,
  in a thread: the run ends KILLED, exit code 128 + the signal), a second one escalates to
  ``cancel(SIGKILL)`` (no more grace); ``wait()`` is called again until the run is no longer
  RUNNING or SCHEDULED;
* on leaving, the previous handlers come back -- or, with ``ignore_after_cancel`` (the CI step,
  which the runner follows up with SIGTERM), the signals stay ignored once a cancel has started,
  so the step can still write its outputs.

A sweep cancels many runs and stops starting new ones; it has its own handler (``mlproj.sweep``),
which ``enter``s a ``Hold`` around each launch so that ``started()`` works for it the same way.
"""
from __future__ import annotations

import inspect
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mlproj.tags import RUNNING, SCHEDULED

ACTIVE = (RUNNING, SCHEDULED)


class Hold:
    """Whether the submission in progress has started its command or job (``started()``): a
    ``Signals``, or a sweep's point being launched (``mlproj.sweep``)."""

    holding = False


_active: Hold | None = None  # the innermost submission in progress (main thread only)


def enter(hold: Hold) -> Hold | None:
    """Make ``hold`` the one ``started()`` marks; returns the previous one, for ``leave``."""
    global _active
    previous, _active = _active, hold
    return previous


def leave(previous: Hold | None) -> None:
    global _active
    _active = previous


def started() -> None:
    """The backend is starting the run's command or job: a signal from here on is held for
    ``wait()`` (which cancels the run) instead of interrupting the submission.  A no-op outside
    ``Signals`` (or a sweep's launch) and off the main thread."""
    if _active is not None and threading.current_thread() is threading.main_thread():
        _active.holding = True


class Interrupted(KeyboardInterrupt):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def cancel_quietly(submitted: Any, signum: int, warn: Callable[[str], None] | None = None) -> None:
    """``submitted.cancel(signum)`` (``cancel()`` for a plugin's run that takes no signal); a failure
    is one warning line, never a thread traceback (the run may have ended meanwhile)."""
    params: Mapping[str, Any]
    try:
        params = inspect.signature(submitted.cancel).parameters
    except (TypeError, ValueError):
        params = {}
    try:
        if params:
            submitted.cancel(signum)
        else:
            submitted.cancel()
    except Exception as e:
        (warn or _stderr)(f'mlproj: warning: cancelling the run failed: {e}')


def _stderr(line: str) -> None:
    from mlproj.safeout import printable

    print(printable(line), file=sys.stderr, flush=True)


def _default_announce(submitted: Any, signum: int) -> None:
    name = signal.Signals(signum).name
    print(f'\nmlproj: {name} received, cancelling run {submitted.run_id}', file=sys.stderr, flush=True)


class Signals(Hold):
    """Signal handling from submission to the end of one run (see the module docstring)."""

    def __init__(self, signums: Iterable[int] = (signal.SIGINT, signal.SIGTERM), *,
                 ignore_after_cancel: bool = False, warn: Callable[[str], None] | None = None) -> None:
        self.signums = tuple(signums)
        self.warn = warn
        self.ignore_after_cancel = ignore_after_cancel
        self.received: list[int] = []
        self.pending: list[int] = []      # signals held since started(), acted on by wait()
        self._previous: dict[int, Any] = {}
        self._outer: Hold | None = None

    def __enter__(self) -> Signals:
        def during_submit(signum: int, frame: Any) -> None:  # noqa: ARG001
            if self.holding:
                self.pending.append(signum)
                return
            raise Interrupted(signum)

        self._previous = {s: signal.signal(s, during_submit) for s in self.signums}
        self._outer = enter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        leave(self._outer)
        ignore = (self.received or self.pending) and self.ignore_after_cancel
        for s, handler in self._previous.items():
            signal.signal(s, signal.SIG_IGN if ignore else handler)

    def wait(self, submitted: Any, announce: Callable[[Any, int], None] | None = None) -> bool:
        """Wait for ``submitted``; the first signal cancels it (after ``announce``), the next kill it."""
        def on_signal(signum: int, frame: Any) -> None:  # noqa: ARG001
            self.received.append(signum)
            if len(self.received) == 1:
                (announce or _default_announce)(submitted, signum)
                threading.Thread(target=cancel_quietly, args=(submitted, signum, self.warn), daemon=True).start()
            else:  # a second signal: no more grace
                threading.Thread(target=cancel_quietly, args=(submitted, signal.SIGKILL, self.warn),
                                 daemon=True).start()

        for s in self.signums:
            signal.signal(s, on_signal)
        held, self.pending = self.pending, []
        for signum in held:  # arrived between started() and now
            on_signal(signum, None)
        ok = submitted.wait()
        while submitted.get_status() in ACTIVE:  # wait() returned early on a signal
            ok = submitted.wait()
        return bool(ok)


def wait_with_signals(submitted: Any, signums: Iterable[int] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP), *,
                      ignore_after_cancel: bool = False, announce: Callable[[Any, int], None] | None = None,
                      warn: Callable[[str], None] | None = None) -> bool:
    """Wait for an already submitted run with signal forwarding; the handlers are restored after."""
    with Signals(signums, ignore_after_cancel=ignore_after_cancel, warn=warn) as handling:
        return handling.wait(submitted, announce)
