"""Run overhead, side by side in one run: bare python vs `mlproj run` vs `mlflow run`.

All three execute the same trivial entry point (`python train.py`, which imports nothing) with
`--env-manager local`, against the same tracking store: the default sqlite file, then a real
`mlflow server` on loopback.  Also times `mlproj --help` and `mlflow --help` start-up.

Usage:  python benchmarks/bench_run.py [--repeat N] [--mlflow-venv DIR]
Writes benchmarks/results/run.md.  MLflow comes from its own venv (default: the test venv that
.ci/setup creates with the full `mlflow` package).
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
MLPROJECT = 'name: bench\nentry_points:\n  main:\n    parameters:\n      x: {type: int, default: 1}\n' \
            '    command: "python train.py {x}"\n'


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def median(argv, cwd, env, repeat) -> float:
    timed(argv, cwd, env)  # warm-up (file caches, sqlite schema creation)
    return statistics.median(timed(argv, cwd, env) for _ in range(repeat))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_server(mlflow_bin: Path, work: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([str(mlflow_bin), 'server', '--host', '127.0.0.1', '--port', str(port),
                             '--backend-store-uri', f'sqlite:///{work}/server.db',
                             '--default-artifact-root', str(work / 'srv-artifacts'), '--workers', '1'],
                            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f'http://127.0.0.1:{port}'
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + '/health', timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.2)
    raise SystemExit('mlflow server did not start')


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--repeat', type=int, default=5)
    ap.add_argument('--server-venv', default=os.environ.get('MLPROJ_TEST_MLFLOW_VENV',
                                                           '/tmp/mlproj-test-mlflow-server-venv'),
                    help='venv with the full mlflow package (runs `mlflow server`)')
    ap.add_argument('--mlflow-venv', default=None,
                    help='venv whose `mlflow run` is compared (default: the server venv; e.g. one with '
                         'only mlflow-skinny + sqlalchemy + alembic)')
    ap.add_argument('--out', default='run.md', help='results file under benchmarks/results/')
    args = ap.parse_args()
    args.mlflow_venv = args.mlflow_venv or args.server_venv
    mlflow_bin = Path(args.mlflow_venv) / 'bin' / 'mlflow'
    server_bin = Path(args.server_venv) / 'bin' / 'mlflow'
    mlproj_bin = Path(sys.executable).with_name('mlproj')
    work = Path(tempfile.mkdtemp(prefix='mlproj-bench-'))
    project = work / 'project'
    project.mkdir()
    (project / 'MLproject').write_text(MLPROJECT)
    (project / 'train.py').write_text('import sys\nprint("x =", sys.argv[1])\n')
    base_env = {k: v for k, v in os.environ.items() if not k.startswith('MLFLOW_')}
    base_env['PATH'] = f'{Path(sys.executable).parent}:{base_env["PATH"]}'
    rows = []
    server, url = start_server(server_bin, work)
    try:
        for label, uri in (('sqlite file (default store)', f'sqlite:///{work}/mlflow.db'), ('mlflow server (HTTP)', url)):
            env = dict(base_env, MLFLOW_TRACKING_URI=uri)
            bare = median([sys.executable, 'train.py', '1'], project, env, args.repeat)
            ours = median([str(mlproj_bin), 'run', str(project), '--env-manager', 'local'], work, env, args.repeat)
            theirs = median([str(mlflow_bin), 'run', str(project), '--env-manager', 'local'], work, env, args.repeat)
            rows.append((label, bare, ours, theirs))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    help_ours = median([str(mlproj_bin), '--help'], work, base_env, args.repeat)
    help_theirs = median([str(mlflow_bin), '--help'], work, base_env, args.repeat)
    shutil.rmtree(work, ignore_errors=True)

    mlflow_version = subprocess.run([str(Path(args.mlflow_venv) / 'bin' / 'python'), '-c',
                                     'import importlib.metadata as m, mlflow; '
                                     'print(mlflow.__version__, "(full mlflow)" if any('
                                     'd.metadata["Name"] == "mlflow" for d in m.distributions()) else "(mlflow-skinny)")'],
                                    capture_output=True, text=True).stdout.strip()
    lines = [
        '# Run overhead: bare python vs mlproj vs mlflow run',
        '',
        f'Measured {time.strftime("%Y-%m-%d")} by `benchmarks/bench_run.py` (median of {args.repeat} runs after one '
        f'warm-up) on {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, '
        f'mlflow {mlflow_version}. Trivial entry point (`python train.py 1`), `--env-manager local`.',
        '',
        '| store | bare python | mlproj run | mlflow run | mlproj overhead | mlflow overhead | mlflow / mlproj |',
        '|---|---|---|---|---|---|---|',
    ]
    for label, bare, ours, theirs in rows:
        lines.append(f'| {label} | {bare:.3f} s | {ours:.3f} s | {theirs:.3f} s | {ours - bare:.3f} s | '
                     f'{theirs - bare:.3f} s | {theirs / ours:.1f}x |')
    lines += ['', '| start-up | mlproj | mlflow | ratio |', '|---|---|---|---|',
              f'| `--help` | {help_ours * 1000:.0f} ms | {help_theirs * 1000:.0f} ms | {help_theirs / help_ours:.1f}x |', '']
    out = HERE / 'results' / args.out
    out.parent.mkdir(exist_ok=True)
    out.write_text('\n'.join(lines))
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
