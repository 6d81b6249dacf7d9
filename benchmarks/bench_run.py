"""Run overhead, side by side in one run: bare python vs `mlproj run` vs `mlflow run` (skinny and full).

Every command executes the same trivial entry point (`python train.py 1`, which imports nothing)
with `--env-manager local`, against the same kind of tracking store, one store kind after another:

* an existing sqlite file (MLflow's default store; the schema exists, as after the first run),
* a fresh sqlite file (a new path every repetition: the first run in a directory pays MLflow's
  schema creation),
* a file store (`./mlruns`),
* a real `mlflow server` on loopback (HTTP).

`mlflow run` comes from two venvs: one with only `mlflow-skinny` + sqlalchemy + alembic (the minimal
install that can use the default store) and one with the full `mlflow` package.  Also times
`mlproj --help` / `mlflow --help` start-up and `python -c pass`.

Usage:  python benchmarks/bench_run.py [--repeat N] [--server-venv DIR] [--skinny-venv DIR]
Writes benchmarks/results/run.md (medians of N after one warm-up; the warm-up also writes the
byte-code caches, so PYTHONDONTWRITEBYTECODE is removed from the environment).  The skinny venv is
created with uv when missing (mlflow-skinny of the same version as the full venv's mlflow).
"""
from __future__ import annotations

import argparse
import itertools
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


def median(argv, cwd, env_for, repeat) -> float:
    """Median wall time; ``env_for(i)`` gives the environment of repetition i (0 is the warm-up)."""
    timed(argv, cwd, env_for(0))
    return statistics.median(timed(argv, cwd, env_for(i)) for i in range(1, repeat + 1))


def paired_medians(first: tuple, second: tuple, env_for, repeat) -> tuple[float, float]:
    """Median wall times of two commands ((argv, cwd) each) run alternately, one warm-up each, so
    that both see the same minutes of a machine whose speed drifts: their difference is the
    overhead column."""
    a, b = [], []
    timed(*first, env_for(0))
    timed(*second, env_for(0))
    for i in range(1, repeat + 1):
        a.append(timed(*first, env_for(i)))
        b.append(timed(*second, env_for(i)))
    return statistics.median(a), statistics.median(b)


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
    for _ in range(1200):
        try:
            with urllib.request.urlopen(url + '/health', timeout=1):
                wait_quiet(proc.pid)
                return proc, url
        except OSError:
            time.sleep(0.2)
    raise SystemExit('mlflow server did not start')


def session_cpu_ticks(sid: int) -> int:
    """CPU ticks (user + system) used so far by the live processes of session ``sid``."""
    total = 0
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open(f'/proc/{name}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            total += int(fields[11]) + int(fields[12])
    return total


def wait_quiet(sid: int, timeout: float = 120.0) -> None:
    """Wait until the server's session is idle: MLflow 3's server answers /health while it still
    starts its job workers, which keep both cores busy for ~10 s and would load the first cells."""
    deadline = time.monotonic() + timeout
    before = session_cpu_ticks(sid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = session_cpu_ticks(sid)
        if now - before <= 2:  # at most 20 ms of CPU in a second
            return
        before = now


def stop_server(proc: subprocess.Popen) -> None:
    """Stop the server started by start_server (its own session: workers included)."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


TRACKER_OPS = '''
import statistics, sys, time
from mlproj.tracking import get_tracker
tracker = get_tracker(sys.argv[1])
samples = []
for i in range(int(sys.argv[2]) + 1):
    t = time.perf_counter()
    exp = tracker.resolve_experiment(None, None)
    run = tracker.create_run(exp, {"mlflow.user": "bench", "mlflow.source.type": "PROJECT"}, None)
    tracker.log_params(run, {"x": "1"})
    tracker.get_run(run)
    tracker.set_status(run, "FINISHED")
    samples.append(time.perf_counter() - t)
print(statistics.median(samples[1:]))
'''

# what a run of an unchanged project imports: PyYAML and pygit2 are not among them once the
# project's parse and clean work tree are remembered (mlproj.yamlcache, mlproj.source.gitstate);
# with the collector held off, as the console script (mlproj.console) imports them
RUN_PATH_IMPORTS = ('import gc; gc.disable(); import mlproj.console, mlproj.clicore, mlproj.commands.run_body, mlproj.runner, '
                    'mlproj.spec, mlproj.params, mlproj.backends.local, mlproj.envs.local, mlproj.source.local, '
                    'mlproj.tracking, mlproj.yamlcache, mlproj.source.gitstate')
# a run ends through the fast exit (mlproj.clicore.fast_exit): the import cell ends the same way
FAST_EXIT = '; import os; os._exit(0)'


def tracker_ops(uri: str, env: dict[str, str], repeat: int) -> float:
    """Median time of the tracking calls one `mlproj run` makes (in one warm process)."""
    out = subprocess.run([sys.executable, '-c', TRACKER_OPS, uri, str(repeat)], env=env, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip())


def trivial_project(prefix: str) -> tuple[Path, Path, dict[str, str]]:
    """(work dir, project dir, environment): the trivial project every run benchmark times, and an
    environment without MLFLOW_* variables or PYTHONDONTWRITEBYTECODE, this interpreter first on PATH."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    project = work / 'project'
    project.mkdir()
    (project / 'MLproject').write_text(MLPROJECT)
    (project / 'train.py').write_text('import sys\nprint("x =", sys.argv[1])\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith('MLFLOW_') and k != 'PYTHONDONTWRITEBYTECODE'}
    env['PATH'] = f'{Path(sys.executable).parent}:{env["PATH"]}'
    return work, project, env


def version_of(venv: Path) -> str:
    return subprocess.run([str(venv / 'bin' / 'python'), '-c',
                           'import importlib.metadata as m, mlflow; '
                           'print(mlflow.__version__, "(full mlflow)" if any('
                           'd.metadata["Name"] == "mlflow" for d in m.distributions()) else "(mlflow-skinny)")'],
                          capture_output=True, text=True).stdout.strip()


def ensure_skinny_venv(venv: Path, server_venv: Path) -> None:
    if (venv / 'bin' / 'mlflow').exists():
        return
    version = subprocess.run([str(server_venv / 'bin' / 'python'), '-c', 'import mlflow; print(mlflow.__version__)'],
                             capture_output=True, text=True, check=True).stdout.strip()
    uv = shutil.which('uv') or str(Path(sys.executable).with_name('uv'))
    subprocess.run([uv, 'venv', '-q', str(venv), '--python', sys.executable], check=True)
    subprocess.run([uv, 'pip', 'install', '-q', '--python', str(venv / 'bin' / 'python'),
                    f'mlflow-skinny=={version}', 'sqlalchemy', 'alembic'], check=True)


def machine() -> str:
    model = ''
    try:
        for line in open('/proc/cpuinfo', encoding='utf-8'):
            if line.startswith('model name'):
                model = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = ', '.join(f'{x:.1f}' for x in os.getloadavg())
    except OSError:
        load = '?'
    return (f'{platform.machine()} {model}, {os.cpu_count()} cores, {platform.platform()}, Python '
            f'{platform.python_version()}; load average before the run {load}')


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--repeat', type=int, default=5)
    ap.add_argument('--server-venv', default=os.environ.get('MLPROJ_TEST_MLFLOW_VENV',
                                                           '/tmp/mlproj-test-mlflow-server-venv'),
                    help='venv with the full mlflow package (runs `mlflow server` and the full `mlflow run`)')
    ap.add_argument('--skinny-venv', default='/tmp/mlproj-bench-mlflow-skinny-venv',
                    help='venv with mlflow-skinny + sqlalchemy + alembic (created when missing)')
    ap.add_argument('--out', default='run.md', help='results file under benchmarks/results/')
    args = ap.parse_args()
    server_venv, skinny_venv = Path(args.server_venv), Path(args.skinny_venv)
    ensure_skinny_venv(skinny_venv, server_venv)
    load_before = machine()
    mlproj_bin = Path(sys.executable).with_name('mlproj')
    tools = [('mlproj run', mlproj_bin), ('mlflow run (skinny)', skinny_venv / 'bin' / 'mlflow'),
             ('mlflow run (full)', server_venv / 'bin' / 'mlflow')]
    work, project, base_env = trivial_project('mlproj-bench-')
    fresh = itertools.count()

    def fixed(uri: str, **extra: str):
        return lambda i: dict(base_env, MLFLOW_TRACKING_URI=uri, **extra)

    def fresh_sqlite(i: int) -> dict[str, str]:
        d = work / f'fresh-{next(fresh)}'
        d.mkdir()
        return dict(base_env, MLFLOW_TRACKING_URI=f'sqlite:///{d}/mlflow.db')

    rows = []
    server, url = start_server(server_venv / 'bin' / 'mlflow', work)
    try:
        stores = [
            ('sqlite file, existing (default store)', fixed(f'sqlite:///{work}/mlflow.db')),
            ('sqlite file, fresh (schema created)', fresh_sqlite),
            ('file store (./mlruns)', fixed(f'file://{work}/mlruns', MLFLOW_ALLOW_FILE_STORE='true')),
            ('mlflow server (HTTP)', fixed(url)),
        ]
        for label, env_for in stores:
            (_, mlproj_exe), *others = tools
            bare, ours = paired_medians(([sys.executable, 'train.py', '1'], project),
                                        ([str(mlproj_exe), 'run', str(project), '--env-manager', 'local'], work),
                                        env_for, args.repeat)
            times = [ours] + [median([str(exe), 'run', str(project), '--env-manager', 'local'], work, env_for,
                                     args.repeat) for _, exe in others]
            rows.append((label, bare, *times))
            print(label, f'{bare:.3f}', *(f'{t:.3f}' for t in times), flush=True)
        # where mlproj's overhead goes, on the existing sqlite store and the server
        split = {
            'sqlite': tracker_ops(f'sqlite:///{work}/mlflow.db', base_env, args.repeat),
            'http': tracker_ops(url, base_env, args.repeat),
        }
    finally:
        stop_server(server)
    plain = lambda i: base_env  # noqa: E731
    bare_pass = median([sys.executable, '-c', 'pass'], work, plain, args.repeat)
    helps = [median([str(exe), '--help'], work, plain, args.repeat) for _, exe in tools]
    imports = {
        'sqlite': median([sys.executable, '-c', RUN_PATH_IMPORTS + ', mlproj.tracking_sqlite' + FAST_EXIT], work, plain,
                         args.repeat),
        'http': median([sys.executable, '-c', RUN_PATH_IMPORTS + ', mlproj.tracking_rest, mlproj.httplite' + FAST_EXIT], work, plain, args.repeat),
    }
    shutil.rmtree(work, ignore_errors=True)
    load_after = ', '.join(f'{x:.1f}' for x in os.getloadavg())

    lines = [
        '# Run overhead: bare python vs mlproj vs mlflow run (skinny and full)',
        '',
        f'Measured {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())} by `benchmarks/bench_run.py --repeat '
        f'{args.repeat}`, all in one run: median of {args.repeat} runs after one warm-up per cell; '
        'bare python and `mlproj run` alternate run by run, so their difference (the overhead) is taken in the same '
        'seconds. '
        f'Machine: {load_before}; {load_after} after. '
        + ('The machine was loaded (1-minute load above its core count), so absolute times are inflated and '
           'noisy; compare within a row (same minutes, same load).' if os.getloadavg()[0] > (os.cpu_count() or 1)
           else 'Compare within a row: every cell of a row was measured in the same minutes.'),
        '',
        f'Trivial entry point (`python train.py 1`), `--env-manager local`. mlflow-skinny venv: '
        f'{version_of(skinny_venv)} + sqlalchemy + alembic; full venv: {version_of(server_venv)}. '
        f'`python -c pass`: {bare_pass:.3f} s.',
        '',
        '| store | bare python | mlproj run | mlflow run (skinny) | mlflow run (full) | mlproj overhead | '
        'skinny / mlproj | full / mlproj |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for label, bare, ours, skinny, full in rows:
        lines.append(f'| {label} | {bare:.3f} s | {ours:.3f} s | {skinny:.3f} s | {full:.3f} s | {ours - bare:.3f} s | '
                     f'{skinny / ours:.1f}x | {full / ours:.1f}x |')
    lines += ['', '| start-up | mlproj | mlflow (skinny) | mlflow (full) | skinny / mlproj | full / mlproj |',
              '|---|---|---|---|---|---|',
              f'| `--help` | {helps[0] * 1000:.0f} ms | {helps[1] * 1000:.0f} ms | {helps[2] * 1000:.0f} ms | '
              f'{helps[1] / helps[0]:.1f}x | {helps[2] / helps[0]:.1f}x |', '',
              '## Where `mlproj run`\'s overhead goes', '',
              'Each part measured on its own (medians), so they add up only roughly to the overhead above: '
              'the interpreter (`python -c pass`), importing every module the run path needs (a `python -c` '
              'that imports them, minus `python -c pass`), the tracking calls of one run in a warm process '
              '(experiment lookup, create run, log params, get run, set status), and the rest '
              '(parsing the MLproject, spawning and waiting for the child, measured as the remainder).', '',
              '| store | mlproj overhead | imports | tracking calls | rest |', '|---|---|---|---|---|']
    for key, label in (('sqlite', 'sqlite file, existing (default store)'), ('http', 'mlflow server (HTTP)')):
        (_, bare, ours, *_rest), = [r for r in rows if r[0] == label]
        imp = imports[key] - bare_pass
        rest = (ours - bare) - imp - split[key]
        lines.append(f'| {label} | {ours - bare:.3f} s | {imp:.3f} s | {split[key]:.3f} s | {rest:.3f} s |')
    lines.append('')
    out = HERE / 'results' / args.out
    out.parent.mkdir(exist_ok=True)
    out.write_text('\n'.join(lines))
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
