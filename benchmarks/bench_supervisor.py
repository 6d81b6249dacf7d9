"""What the local backend's supervisor and the stale-run sweep cost on a run's path.

* spawn: starting ``bash -c true`` and waiting for it, directly with ``subprocess.Popen``, through
  ``mlproj.backends.local.spawn`` with a supervisor started on demand (``python -I -S
  supervisor.py``, the command message, posix_spawn, status pipe), and through a supervisor
  prestarted 50 ms earlier (``local.prestart``: what a run pays, since the runner starts it while
  the run is being created), interleaved;
* sweep: one ``mlproj.stale.sweep`` of an experiment (the search query the local backend runs in a
  background thread while the command runs), on a sqlite store with the client already loaded and
  on a real ``mlflow server`` over REST, vs one ``get_run`` on the same store for scale.

Usage: python benchmarks/bench_supervisor.py [--repeat N] [--server URI]
Writes benchmarks/results/supervisor.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent


def _median(xs: list[float]) -> str:
    return f'{statistics.median(xs) * 1000:.1f} ms (min {min(xs) * 1000:.1f})'


def bench_spawn(repeat: int) -> tuple[list[float], list[float], list[float], list[float]]:
    from mlproj.backends.local import prestart, spawn

    launch = SimpleNamespace(project_dir=Path.cwd())
    direct, supervised, bare, prestarted = [], [], [], []
    for _ in range(repeat):
        pre = prestart()
        time.sleep(0.05)  # it boots meanwhile, as it does beside a run's tracking calls
        t = time.perf_counter()
        s = spawn(launch, ['bash', '-c', 'true'], dict(os.environ), prestarted=pre)
        s.proc.wait()
        s.close()
        prestarted.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([sys.executable, '-I', '-S', '-c', 'pass'])
        bare.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.Popen(['bash', '-c', 'true'], start_new_session=True, stdin=subprocess.DEVNULL).wait()
        direct.append(time.perf_counter() - t)
        t = time.perf_counter()
        s = spawn(launch, ['bash', '-c', 'true'], dict(os.environ))
        s.proc.wait()
        s.close()
        supervised.append(time.perf_counter() - t)
    return direct, supervised, bare, prestarted


def bench_sweep(uri: str, repeat: int) -> tuple[list[float], list[float]]:
    from mlproj import stale, tracking

    tracker = tracking.get_tracker(uri)
    exp = tracker.resolve_experiment('bench-sweep', None)
    run_id = tracker.create_run(exp, {**stale.launcher_tags()}, 'bench')
    sweeps, gets = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        stale.sweep(tracker, [exp], exclude=run_id)
        sweeps.append(time.perf_counter() - t)
        t = time.perf_counter()
        tracker.get_run(run_id)
        gets.append(time.perf_counter() - t)
    tracker.set_status(run_id, 'FINISHED')
    return sweeps, gets


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--repeat', type=int, default=10)
    ap.add_argument('--server', default=None, help='an mlflow server URI to include')
    args = ap.parse_args()
    direct, supervised, bare, prestarted = bench_spawn(args.repeat)
    rows = [('spawn + wait `bash -c true`', _median(direct), _median(supervised), _median(prestarted),
             f'+{(statistics.median(prestarted) - statistics.median(direct)) * 1000:.1f} ms'),
            ('for scale: one `python -I -S -c pass`', '', _median(bare), '', '')]
    with tempfile.TemporaryDirectory() as d:
        stores = [('sqlite', f'sqlite:///{d}/b.db')] + ([('mlflow server (REST)', args.server)] if args.server else [])
        sweep_rows = []
        for label, uri in stores:
            sweeps, gets = bench_sweep(uri, args.repeat)
            sweep_rows.append((label, _median(gets), _median(sweeps)))
    load = os.getloadavg()[0]
    out = [
        '# Local backend: supervisor and stale-run sweep cost',
        '',
        f'Measured {time.strftime("%Y-%m-%d")} by `benchmarks/bench_supervisor.py` on {platform.machine()}, '
        f'{os.cpu_count()} cores, Python {platform.python_version()}; median of {args.repeat} interleaved rounds; '
        f'load average at the end {load:.1f}.',
        '',
        '| what | direct Popen | supervisor started on demand | supervisor prestarted (a run) | prestarted - direct |',
        '|---|---|---|---|---|',
        *[f'| {a} | {b} | {c} | {d} | {e} |' for a, b, c, d, e in rows],
        '',
        'A supervisor started on demand costs one interpreter start (`python -I -S`, importing only C '
        'modules: `_signal`, `_ctypes`), the bare `python -I -S -c pass` row. A run does not pay it: '
        'the runner starts the supervisor before creating the run, so it boots on the other core while '
        'the tracking calls wait on the store, and the command then starts as soon as its message is '
        'written (the prestarted column).',
        '',
        'The stale-run sweep runs in a background thread while the command runs, so a run that lasts',
        'longer than one query pays nothing for it; for scale, next to one `get_run` on the same store:',
        '',
        '| store | one get_run | one sweep (search RUNNING runs tagged with this host) |',
        '|---|---|---|',
        *[f'| {a} | {b} | {c} |' for a, b, c in sweep_rows],
        '',
        'The sweep is off the run\'s path (a background thread); `MLPROJ_STALE_CHECK=0` disables it.',
        '',
    ]
    (HERE / 'results' / 'supervisor.md').write_text('\n'.join(out))
    print('\n'.join(out))


if __name__ == '__main__':
    sys.exit(main())
