"""A 20-point sweep side by side: `mlproj sweep` vs a shell loop of `mlflow run` vs bare python.

MLflow has no sweep; what users write instead is a loop of `mlflow run -P x=$i`.  All three run
the same trivial entry point (`python train.py {x}`, importing nothing) 20 times with
`--env-manager local`, against the same kind of store, one after the other:

* an existing sqlite file (MLflow's default store),
* a real `mlflow server` on loopback (HTTP, one worker).

Per-point overhead = (wall of the whole sweep - wall of 20 bare `python train.py x` runs) / 20;
the marginal cost of one more point = (sweep of N - sweep of 1) / (N - 1) - one bare run.
`mlproj sweep` runs the points one at a time (``--max-parallel 1``), as the loop does, and
also records a parent run; a second row gives ``--max-parallel 2`` for scale.

Usage:  python benchmarks/bench_sweep.py [--points N] [--repeat R] [--server-venv DIR]
Writes benchmarks/results/sweep.md (medians of R after one warm-up).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import machine, start_server, stop_server, trivial_project  # noqa: E402

HERE = Path(__file__).resolve().parent


def wall(argv: list[str], cwd: Path, env: dict[str, str], shell: bool = False) -> float:
    t = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   shell=shell)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--points', type=int, default=20)
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--server-venv', default=os.environ.get('MLPROJ_TEST_MLFLOW_VENV',
                                                           '/tmp/mlproj-test-mlflow-server-venv'))
    args = ap.parse_args()
    n = args.points
    server_venv = Path(args.server_venv)
    mlflow_bin = server_venv / 'bin' / 'mlflow'
    mlproj_bin = Path(sys.executable).with_name('mlproj')
    load_before = machine()
    work, project, base_env = trivial_project('mlproj-bench-sweep-')
    values = ','.join(str(i) for i in range(n))
    bare_loop = f'for i in $(seq 0 {n - 1}); do {sys.executable} train.py $i; done'
    mlflow_loop = (f'for i in $(seq 0 {n - 1}); do {mlflow_bin} run {project} --env-manager local -P x=$i '
                   f'|| exit 1; done')
    rows = []
    server, url = start_server(mlflow_bin, work)
    try:
        for label, uri in (('sqlite file, existing (default store)', f'sqlite:///{work}/mlflow.db'),
                           ('mlflow server (HTTP)', url)):
            env = dict(base_env, MLFLOW_TRACKING_URI=uri)
            cases = {
                'bare': ([bare_loop], project, True),
                'mlproj sweep': ([str(mlproj_bin), 'sweep', str(project), '--env-manager', 'local', '-P',
                                  f'x={values}'], work, False),
                'mlproj sweep, 1 point': ([str(mlproj_bin), 'sweep', str(project), '--env-manager', 'local', '-P',
                                           'x=0'], work, False),
                'mlproj sweep --max-parallel 2': ([str(mlproj_bin), 'sweep', str(project), '--env-manager',
                                                   'local', '-P', f'x={values}', '--max-parallel', '2'], work, False),
                'mlflow run loop': ([mlflow_loop], work, True),
            }
            for argv, cwd, shell in cases.values():  # warm-up (the first also creates the sqlite schema)
                wall(argv, cwd, env, shell)
            times = {k: statistics.median(wall(argv, cwd, env, shell) for _ in range(args.repeat))
                     for k, (argv, cwd, shell) in cases.items()}
            rows.append((label, times))
            print(label, {k: round(v, 2) for k, v in times.items()}, flush=True)
    finally:
        stop_server(server)
    version = subprocess.run([str(server_venv / 'bin' / 'python'), '-c', 'import mlflow; print(mlflow.__version__)'],
                             capture_output=True, text=True).stdout.strip()
    out = [
        f'# A {n}-point sweep: `mlproj sweep` vs a shell loop of `mlflow run`',
        '',
        f'Machine: {load_before}; load average after {", ".join(f"{x:.1f}" for x in os.getloadavg())}. '
        f'MLflow {version} (full package, `--env-manager local`). Trivial entry point (`python train.py {{x}}`), '
        f'{n} points, wall clock of the whole sweep, median of {args.repeat} after a warm-up. '
        'Per-point overhead = (sweep - the bare loop) / points; marginal = (sweep of N - sweep of 1) / (N - 1) '
        '- one bare run (what one more point costs once the sweep has started).',
        '',
        '| store | bare python loop | `mlproj sweep` | per point | marginal | `mlproj sweep --max-parallel 2` | '
        '`mlflow run` loop | per point | loop / sweep |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for label, t in rows:
        bare = t['bare']
        per_mlproj = (t['mlproj sweep'] - bare) / n
        per_mlflow = (t['mlflow run loop'] - bare) / n
        marginal = (t['mlproj sweep'] - t['mlproj sweep, 1 point']) / (n - 1) - bare / n
        out.append(f'| {label} | {bare:.2f} s | {t["mlproj sweep"]:.2f} s | {per_mlproj * 1000:.0f} ms | '
                   f'{marginal * 1000:.0f} ms | '
                   f'{t["mlproj sweep --max-parallel 2"]:.2f} s | {t["mlflow run loop"]:.2f} s | '
                   f'{per_mlflow * 1000:.0f} ms | {t["mlflow run loop"] / t["mlproj sweep"]:.1f}x |')
    out += ['', 'The sweep also creates and ends one parent run; every point is a child run '
            '(`mlflow.parentRunId`). Target (issue 17): per-point overhead <= 50 ms on both stores.', '']
    (HERE / 'results' / 'sweep.md').write_text('\n'.join(out))
    print('\n'.join(out))


if __name__ == '__main__':
    main()
