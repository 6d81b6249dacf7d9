"""Sweeps: many runs of one entry point over a grid of parameter values, as one parent run.

``mlproj sweep URI -e train -P alpha=0.1,0.5,1.0 -P l1_ratio=0.1,0.9`` runs the 6 points of the
grid (a value list splits on commas; ``\\,`` is a literal comma, ``\\\\`` a backslash; a value
without a comma is a constant of every point).  A sweep file (``--sweep-file``) adds a ``grid:``
(name -> list, crossed with the command line's lists) and/or explicit ``points:`` (a list of
name -> value mappings, each merged over the constants); see ``mlproj.sweep_points``.

How it runs:

* The source is resolved and the project loaded **once**; every point is planned (parameters
  bound and validated) **before** anything is created, so a bad value in point 9 fails the
  sweep before point 1 starts.
* One parent MLflow run (tags ``mlproj.sweep=true``, ``mlproj.sweep.points``, its constants as
  params); each point is a child run (``mlflow.parentRunId``) created when the point starts, so
  a point that never starts leaves no run.  One tracking client serves every point; with the
  local backend the environment is prepared once (``Launch.prepared``).
* At most ``--max-parallel`` points run at once (default 1).  A failed point does not stop the
  others unless ``--fail-fast`` (then running points are cancelled and queued ones never start).
* A signal (Ctrl-C, SIGTERM) stops starting points and cancels every running one (each ends
  KILLED); a second signal kills without grace.  The parent ends FINISHED when every point
  finished (or was reused), KILLED when cancelled, FAILED otherwise.
* With ``--reuse`` each point first looks for a FINISHED run with its cache key
  (``mlproj.runcache``): reused points are reported, not run.
* At the end a table: each point's parameters (the swept ones), status, duration, run id and,
  with ``--metric NAME``, that metric (best first: ``--goal min`` (default) or ``max``).

Remote backends work the same way: each point is a submitted job, with the same parallelism limit.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from mlproj.backends import signals
from mlproj.backends.signals import Interrupted
from mlproj.color import status as paint
from mlproj.errors import BadArgumentError
from mlproj.tags import (
    CACHE_KEY,
    FAILED,
    FINISHED,
    KILLED,
    LAUNCHER_PREFIX,
    RUN_NAME,
    RUNNING,
    SWEEP,
    SWEEP_MAX_PARALLEL,
    SWEEP_METRIC,
    SWEEP_POINTS,
    SWEEP_SWEPT,
)


@dataclass
class Point:
    index: int
    params: dict[str, str]
    plan: Any = None
    run_id: str | None = None
    status: str = 'QUEUED'       # QUEUED, RUNNING, FINISHED, FAILED, KILLED, REUSED, SKIPPED
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    metric: float | None = None
    error: str | None = None
    submitted: Any = field(default=None, repr=False)

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started


class _SharedSource:
    """A sweep's source, handed to every point: a point's end must not remove the checkout."""

    def __init__(self, src: Any) -> None:
        self._src = src

    def __getattr__(self, name: str) -> Any:
        return getattr(self._src, name)

    def cleanup(self) -> None:
        return None  # the sweep cleans up once, at its end


@dataclass
class SweepResult:
    parent_run_id: str | None
    status: str
    points: list[Point]
    swept: list[str]
    metric: str | None = None
    signum: int | None = None

    @property
    def exit_code(self) -> int:
        if self.signum:
            return 128 + self.signum
        return 0 if self.status == FINISHED else 1


def run_sweep(request: Any, points_params: list[dict[str, str]], constants: dict[str, str], swept: list[str], *,
              max_parallel: int = 1, fail_fast: bool = False, metric: str | None = None, goal: str = 'min',
              out: Any = None) -> SweepResult:
    """Plan every point, create the parent run, run the points; see the module docstring."""
    from mlproj import runner, tracking

    log = out or sys.stderr
    if max_parallel < 1:
        raise BadArgumentError('--max-parallel must be at least 1')
    if request.run_id:
        raise BadArgumentError('--run-id cannot be used with a sweep (each point is a new run)')
    src, project = runner.resolve_project(request)
    try:
        shared = _SharedSource(src)
        points = []
        for i, values in enumerate(points_params):
            preq = request.with_(parameters=values, run_name=_point_name(request.run_name, i, values, swept))
            p = runner.plan_point(preq, shared, project)
            points.append(Point(i, values, p))
        first = points[0].plan
        tracker = tracking.get_tracker(first.tracking_uri)
        exp_name, exp_id = tracking.resolve_experiment_args(request.experiment_name, request.experiment_id)
        experiment_id = str(tracker.resolve_experiment(exp_name, exp_id))
        parent_tags = {k: v for k, v in first.tags.items()
                       if k not in (RUN_NAME, CACHE_KEY) and not k.startswith(LAUNCHER_PREFIX)}
        parent_tags.update({SWEEP: 'true', SWEEP_POINTS: str(len(points)),
                            SWEEP_SWEPT: ','.join(swept), SWEEP_MAX_PARALLEL: str(max_parallel)})
        if metric:
            parent_tags[SWEEP_METRIC] = f'{metric}:{goal}'
        parent_tags.update(runner._launcher_tags(request))
        parent_name = request.run_name or f'sweep-{first.entry_point.name}'
        parent_tags[RUN_NAME] = parent_name
        parent_id = tracker.create_run(experiment_id, parent_tags, parent_name)
    except BaseException:
        src.cleanup()
        raise
    result = SweepResult(parent_id, RUNNING, points, swept, metric)
    print(paint(f"=== Sweep of {len(points)} point(s) in parent run with ID '{parent_id}' "
                f"(at most {max_parallel} at once) ===", log, 'plain'), file=log, flush=True)
    try:
        try:
            tracker.log_params(parent_id, constants)
            _schedule(result, tracker, experiment_id, max_parallel, fail_fast, log)
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                result.status = KILLED
            else:
                result.status = FAILED
            raise
        finally:
            if result.status == RUNNING:
                result.status = _overall(points)
            problem = tracking.record_terminal_status(tracker, parent_id, result.status)
            if problem:
                print(f'mlproj: warning: {problem}', file=log)
    finally:
        src.cleanup()
    if metric:
        _fill_metric(result, tracker, metric)
    return result


def _point_name(base: str | None, i: int, values: dict[str, str], swept: list[str]) -> str:
    label = ','.join(f'{k}={values[k]}' for k in swept if k in values)[:200]
    return f'{base}-{i}' if base else (label or f'point-{i}')


def _overall(points: list[Point]) -> str:
    statuses = {p.status for p in points}
    if statuses <= {FINISHED, 'REUSED'}:
        return FINISHED
    if KILLED in statuses and not statuses & {FAILED, 'ERROR'}:
        return KILLED
    return FAILED


def _schedule(result: SweepResult, tracker: Any, experiment_id: str, max_parallel: int, fail_fast: bool,
              log: Any) -> None:
    import queue

    from mlproj import runner

    prepared: dict = {}
    done: queue.Queue = queue.Queue()
    running: dict[int, Point] = {}
    pending = list(result.points)
    received: list[int] = []
    submitting = threading.Event()
    stopping = threading.Event()
    hold = signals.Hold()  # the point being launched has started its command (signals.started)

    def cancel_all(sig: int) -> None:
        for p in list(running.values()):
            if p.submitted is not None:
                threading.Thread(target=p.submitted.cancel, args=(sig,), daemon=True).start()

    def on_signal(signum: int, frame: Any) -> None:  # noqa: ARG001
        first = not received
        received.append(signum)
        stopping.set()
        if submitting.is_set() and not hold.holding:  # once the command started, it is cancelled below
            raise Interrupted(signum)
        if first:
            print(paint(f'\n=== Sweep interrupted: cancelling {len(running)} running point(s); '
                        f'{len(pending)} queued point(s) will not start ===', log, 'bad'), file=log, flush=True)
            cancel_all(signum)
        else:
            cancel_all(signal.SIGKILL)

    def watch(p: Point) -> None:
        try:
            ok = p.submitted.wait()
            while p.submitted.get_status() == RUNNING:
                ok = p.submitted.wait()
        except BaseException as e:  # a backend's wait failing ends that point, not the sweep
            p.error = str(e).splitlines()[0] if str(e) else type(e).__name__
            ok = False
        p.ended = time.monotonic()
        p.status = FINISHED if ok else p.submitted.get_status()
        if p.status not in (FINISHED, FAILED, KILLED):
            p.status = FAILED
        p.exit_code = getattr(p.submitted, 'exit_code', None)
        done.put(p)

    on_main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if on_main else {}
    try:
        while pending or running:
            while pending and len(running) < max_parallel and not stopping.is_set():
                p = pending.pop(0)
                p.started = time.monotonic()
                p.status = RUNNING
                running[p.index] = p
                hold.holding = False
                outer = signals.enter(hold)
                submitting.set()
                try:
                    try:
                        sub = runner.launch(p.plan, tracker=tracker, experiment_id=experiment_id,
                                            parent_run_id=result.parent_run_id, prepared=prepared,
                                            reuse_announce=lambda m, i=p.index: print(f'mlproj: point {i}: {m}',
                                                                                      file=log, flush=True))
                    finally:
                        signals.leave(outer)
                except Interrupted as e:
                    submitting.clear()
                    p.status, p.ended = KILLED, time.monotonic()
                    del running[p.index]
                    if len(received) == 1:
                        print(paint(f'\n=== Sweep interrupted by signal {e.signum} while starting point '
                                    f'{p.index} ===', log, 'bad'), file=log, flush=True)
                        cancel_all(e.signum)
                    break
                except Exception as e:
                    from mlproj.errors import MlprojError

                    submitting.clear()
                    if not isinstance(e, MlprojError):
                        raise
                    p.status, p.ended, p.error = FAILED, time.monotonic(), str(e)
                    del running[p.index]
                    print(f'mlproj: error: point {p.index}: {p.error}', file=log, flush=True)
                    if fail_fast:
                        stopping.set()
                        cancel_all(signal.SIGTERM)
                    continue
                submitting.clear()
                p.submitted = sub
                p.run_id = sub.run_id
                if getattr(sub, 'reused', False):
                    p.status, p.ended = 'REUSED', p.started
                    del running[p.index]
                    continue
                threading.Thread(target=watch, args=(p,), name=f'mlproj-sweep-{p.index}', daemon=True).start()
                if stopping.is_set():  # a signal arrived while this point was being started
                    sub_cancel = threading.Thread(target=sub.cancel, args=(received[-1] if received else
                                                                          signal.SIGTERM,), daemon=True)
                    sub_cancel.start()
            if not running:
                break
            try:
                p = done.get(timeout=0.2)
            except queue.Empty:
                continue
            running.pop(p.index, None)
            print(paint(f"=== Point {p.index} (run '{p.run_id}') {p.status.lower()} ===", log,
                        'ok' if p.status == FINISHED else 'bad'), file=log, flush=True)
            if p.status == FAILED and fail_fast and not stopping.is_set():
                print(paint('=== --fail-fast: cancelling the other points ===', log, 'bad'), file=log, flush=True)
                stopping.set()
                cancel_all(signal.SIGTERM)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    for p in pending:
        p.status = 'SKIPPED'
    if received:
        result.signum = received[0]
        result.status = KILLED


def _fill_metric(result: SweepResult, tracker: Any, metric: str) -> None:
    for p in result.points:
        if not p.run_id:
            continue
        try:
            value = tracker.get_run(p.run_id).metrics.get(metric)
        except Exception:
            value = None
        p.metric = float(value) if isinstance(value, (int, float)) else None


def ordered(result: SweepResult, goal: str = 'min') -> list[Point]:
    """Points best first by the metric (missing last), else in sweep order."""
    if not result.metric:
        return list(result.points)
    import math

    def key(p: Point) -> tuple:
        m = p.metric
        if m is None or math.isnan(m):
            return (1, 0.0, p.index)
        return (0, m if goal == 'min' else -m, p.index)

    return sorted(result.points, key=key)


def table(result: SweepResult, goal: str = 'min') -> str:
    from mlproj.safeout import printable

    headers = ['#', *result.swept, 'status', 'duration', 'run id']
    if result.metric:
        headers.append(result.metric)
    rows = []
    for p in ordered(result, goal):
        row = [str(p.index), *[printable(p.params.get(k, '')) for k in result.swept], p.status,
               f'{p.duration:.1f}s' if p.duration is not None else '-', p.run_id or '-']
        if result.metric:
            row.append('-' if p.metric is None else f'{p.metric:.6g}')
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ['  '.join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             '  '.join('-' * w for w in widths)]
    lines += ['  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return '\n'.join(lines)


def as_json(result: SweepResult, goal: str = 'min') -> dict[str, Any]:
    return {
        'parent_run_id': result.parent_run_id, 'status': result.status, 'metric': result.metric, 'goal': goal,
        'points': [{'index': p.index, 'params': p.params, 'status': p.status, 'run_id': p.run_id,
                    'duration': p.duration, 'exit_code': p.exit_code, 'metric': p.metric, 'error': p.error}
                   for p in ordered(result, goal)],
    }
