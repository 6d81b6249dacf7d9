"""Submit-to-first-log latency on Ray and Slurm: `mlproj run -b ray|slurm` vs the engine's own CLI.

One run, side by side and interleaved, against the same real engines the tests use (a local Ray head
and a single-node Slurm cluster, started here with the test helpers and stopped at the end):

* Ray:   `ray job submit --address A --working-dir P -- bash -c 'echo FIRST-LOG; ...'` (it tails the
         job's logs) vs `mlproj run P -b ray -c '{"address": A}'`;
* Slurm: `sbatch --parsable --output F --wrap '...'` then polling F every 50 ms (the fastest a user
         could see output) vs `mlproj run P -b slurm`.

The latency is from starting the command to the moment the marker line is readable.  mlproj also
creates the MLflow run (tags, params) first, so it is measured with two tracking stores: a local
file store (costs the `mlflow` client import) and a real `mlflow server` over HTTP (mlproj talks
REST; the usual set-up for remote engines, whose jobs must reach the store anyway).

Usage: python benchmarks/bench_backends.py [--repeat N]   (root, Ray + Slurm installed as for the tests)
Writes benchmarks/results/backends.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO / 'tests' / 'backends' / 'ray'), str(REPO / 'tests' / 'backends' / 'slurm')]

from ray_helpers import RayHead, ensure_ray_venv  # noqa: E402
from slurm_helpers import SlurmCluster, free_port  # noqa: E402

MARKER = 'FIRST-LOG-MARKER'
COMMAND = f'echo {MARKER}; sleep 1'
MLPROJECT = f'name: bench\nentry_points:\n  main:\n    command: "{COMMAND}"\n'
MLFLOW_VENV = Path(os.environ.get('MLPROJ_TEST_MLFLOW_VENV', '/tmp/mlproj-test-mlflow-server-venv'))


def latencies(argv: list[str], env: dict[str, str], cwd: Path, accepted: str,
              timeout: float = 120) -> tuple[float, float]:
    """(seconds until the engine accepted the job, seconds until the marker line was readable).

    stdout and stderr are read merged; ``accepted`` is a substring of the line that reports the
    submission (the job id); the marker must be a line of its own (not an echo of the command)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd, text=True)
    seen: dict[str, float] = {}

    def read() -> None:
        for line in proc.stdout:
            now = time.perf_counter()
            if accepted in line:
                seen.setdefault('accepted', now)
            if line.strip() == MARKER:
                seen.setdefault('first', now)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    proc.wait(timeout)
    if proc.returncode != 0 or len(seen) != 2:
        raise RuntimeError(f'{argv[:3]} failed ({proc.returncode}) or printed no marker: {seen}')
    return seen['accepted'] - t0, seen['first'] - t0


def sbatch_latency(env: dict[str, str], cwd: Path) -> tuple[float, float]:
    out = cwd / f'direct-{time.monotonic_ns()}.out'
    t0 = time.perf_counter()
    proc = subprocess.run(['sbatch', '--parsable', f'--output={out}', '--wrap', COMMAND], env=env, cwd=cwd,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    accepted = time.perf_counter() - t0
    while True:
        try:
            if MARKER in out.read_text():
                return accepted, time.perf_counter() - t0
        except FileNotFoundError:
            pass
        if time.perf_counter() - t0 > 120:
            raise RuntimeError('sbatch job printed nothing')
        time.sleep(0.05)


def start_mlflow_server(work: Path) -> tuple[subprocess.Popen | None, str | None]:
    mlflow_bin = MLFLOW_VENV / 'bin' / 'mlflow'
    if not mlflow_bin.exists():
        return None, None
    port = free_port()
    proc = subprocess.Popen([str(mlflow_bin), 'server', '--host', '127.0.0.1', '--port', str(port),
                             '--backend-store-uri', f'sqlite:///{work}/server.db', '--default-artifact-root',
                             str(work / 'artifacts'), '--workers', '1'], cwd=work, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f'http://127.0.0.1:{port}'
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + '/health', timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.2)
    raise SystemExit('mlflow server did not start')


def import_time(module: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, '-c', f'import {module}'], check=True)
    return time.perf_counter() - t


def stats(values: list[float]) -> str:
    return f'{statistics.median(values):.2f} s (min {min(values):.2f})'


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--repeat', type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix='mlproj-bench-backends-'))
    project = work / 'project'
    project.mkdir()
    (project / 'MLproject').write_text(MLPROJECT)
    bindir = Path(sys.executable).parent
    base = {k: v for k, v in os.environ.items() if not k.startswith(('MLFLOW_', 'RAY_', 'SLURM_'))}
    base.update(PATH=f'{bindir}:{base["PATH"]}', MLPROJ_CACHE_DIR=str(work / 'cache'),
                MLPROJ_SLURM_SHARED_DIR=str(work / 'shared'), RAY_USAGE_STATS_ENABLED='0')
    head, cluster, server = RayHead(ensure_ray_venv()), SlurmCluster(), None
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        head.start()
        cluster.start()
        server, url = start_mlflow_server(work)
        stores = [('file store', (work / 'mlruns').as_uri())] + ([('mlflow server (HTTP)', url)] if url else [])
        slurm_env = dict(base, SLURM_CONF=str(cluster.conf))
        ray_cfg = json.dumps({'address': head.address})
        cases = [('ray', 'ray job submit', None,
                  lambda env: latencies([str(bindir / 'ray'), 'job', 'submit', '--address', head.address,
                                         '--working-dir', str(project), '--', 'bash', '-c', COMMAND],
                                        env, work, 'submitted successfully')),
                 ('slurm', 'sbatch + poll output', None, lambda env: sbatch_latency(env, work))]
        for label, uri in stores:
            cases.append(('ray', f'mlproj run -b ray, {label}', uri,
                          lambda env: latencies([str(bindir / 'mlproj'), 'run', str(project), '-b', 'ray',
                                                 '-c', ray_cfg], env, work, "=== Ray job 'mlproj-")))
            cases.append(('slurm', f'mlproj run -b slurm, {label}', uri,
                          lambda env: latencies([str(bindir / 'mlproj'), 'run', str(project), '-b', 'slurm'],
                                                env, work, '=== Slurm job ')))
        for round_ in range(args.repeat + 1):  # round 0 warms caches (imports, sqlite schema, Ray workers)
            for engine, name, uri, fn in cases:
                env = dict(slurm_env if engine == 'slurm' else base)
                if uri:
                    env['MLFLOW_TRACKING_URI'] = uri
                value = fn(env)
                if round_:
                    results.setdefault((engine, name), []).append(value)
                print(f'{engine:5} {name:45} accepted {value[0]:.2f} s, first log {value[1]:.2f} s', flush=True)
    finally:
        if server is not None:  # uvicorn and its workers share the server's process group
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(server.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        cluster.stop()
        head.stop()
        shutil.rmtree(work, ignore_errors=True)

    imports = {m: import_time(m) for m in ('mlproj.cli', 'mlflow.tracking', 'ray.job_submission')}
    load = os.getloadavg()
    lines = ['# Remote backends: submission and first-log latency', '',
             f'Measured {time.strftime("%Y-%m-%d")} by `benchmarks/bench_backends.py` on {platform.machine()}, '
             f'{os.cpu_count()} cores, Python {platform.python_version()}, Debian; Ray head and single-node Slurm '
             f'on the same machine (loopback). Median of {args.repeat} interleaved rounds after one warm-up round; '
             f'load average at the end {load[0]:.1f} (other work was running on the machine).', '',
             f'Entry point: `{COMMAND}`. *Accepted*: from starting the command to the engine having the job '
             '(`sbatch` returned / mlproj printed the job id; `ray job submit` printed "submitted successfully"). '
             '*First log*: to the marker line being readable (includes the engine starting the job).', '',
             '| engine | command | accepted | overhead | first log | overhead |', '|---|---|---|---|---|---|']
    direct = {'ray': results[('ray', 'ray job submit')], 'slurm': results[('slurm', 'sbatch + poll output')]}
    for (engine, name), values in results.items():
        cells = []
        for i in (0, 1):
            mine = [v[i] for v in values]
            base = statistics.median(v[i] for v in direct[engine])
            over = '-' if values is direct[engine] else f'{statistics.median(mine) - base:+.2f} s'
            cells += [stats(mine), over]
        lines.append(f'| {engine} | {name} | ' + ' | '.join(cells) + ' |')
    lines += ['', 'Import cost of the pieces involved (fresh interpreter, wall clock):', '',
              '| module | import |', '|---|---|']
    lines += [f'| `{m}` | {t:.2f} s |' for m, t in imports.items()]
    lines.append('')
    out = HERE / 'results' / 'backends.md'
    out.parent.mkdir(exist_ok=True)
    out.write_text('\n'.join(lines))
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
