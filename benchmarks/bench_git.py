"""Git sources: `mlproj run` vs `mlflow run` on a Git URI served by `git daemon`, side by side.

Usage:  .venv/bin/python benchmarks/bench_git.py [--repeat N] [--commits N] [--files N]
Writes benchmarks/results/git.md.

MLflow comes from its own venv, created on first use under benchmarks/.work/mlflow-venv with
`uv venv` + `uv pip install mlflow-skinny sqlalchemy alembic gitpython` (gitignored).

The fixture is a repository with --commits commits touching --files files (~1 KiB each) and the
project in `proj/`; it is served by `git daemon --verbose` on 127.0.0.1 (the log counts
connections).  Both tools run `URI#proj -v <full sha> --env-manager local` against their own,
pre-created sqlite store, so store creation is not timed.

Measured (median of --repeat):
* source only, in process: mlproj `source.resolve()` cold (empty cache) and pinned rerun (warm
  cache; the daemon log must show zero new connections) vs MLflow's own fetch step
  (`mlflow.projects.utils._fetch_project`: git init + depth-1 fetch + checkout + submodules);
* end to end: `mlproj run` first run (empty cache) and pinned rerun vs `mlflow run` (which
  clones afresh every time, so its first run and rerun cost the same).

Targets (issue 4): pinned rerun resolves its source in <= 50 ms with zero network; first run no
slower than MLflow's depth-1 clone.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / 'benchmarks' / '.work' / 'git'
MLFLOW_VENV = REPO / 'benchmarks' / '.work' / 'mlflow-venv'
MLPROJECT = 'name: bench\nentry_points:\n  main:\n    command: "python train.py"\n'


def sh(argv: list[str], cwd: Path | None = None, env: dict | None = None) -> str:
    out = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f'{" ".join(map(str, argv))} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}')
    return out.stdout.strip()


def ensure_mlflow_venv() -> Path:
    py = MLFLOW_VENV / 'bin' / 'python'
    if not (MLFLOW_VENV / 'bin' / 'mlflow').exists():
        uv = shutil.which('uv', path=str(Path(sys.executable).parent)) or 'uv'
        sh([uv, 'venv', '-q', str(MLFLOW_VENV)])
        sh([uv, 'pip', 'install', '-q', '--python', str(py), 'mlflow-skinny', 'sqlalchemy', 'alembic', 'gitpython'])
    return MLFLOW_VENV


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith('GIT_')}
    env.update(GIT_AUTHOR_NAME='b', GIT_AUTHOR_EMAIL='b@example.com', GIT_COMMITTER_NAME='b',
               GIT_COMMITTER_EMAIL='b@example.com', GIT_CONFIG_NOSYSTEM='1', HOME=str(WORK / 'home'))
    return env


def make_repo(commits: int, files: int) -> tuple[Path, str]:
    """A repository with history, served bare from WORK/srv/bench.git; returns (srv, head sha)."""
    rng = random.Random(4)
    src = WORK / 'src'
    env = git_env()
    sh(['git', 'init', '-q', '-b', 'main', str(src)], env=env)
    (src / 'proj').mkdir()
    (src / 'proj' / 'MLproject').write_text(MLPROJECT)
    (src / 'proj' / 'train.py').write_text('print("trained")\n')
    names = [f'pkg{i % 20}/mod{i}.py' for i in range(files)]
    fixed = {rel: (src / rel).read_text() for rel in ('proj/MLproject', 'proj/train.py')}
    # git fast-import keeps fixture creation quick even with hundreds of commits
    stream: list[str] = []
    for c in range(1, commits + 1):
        msg = f'commit {c}'
        stream += ['commit refs/heads/main', f'mark :{c}', f'committer b <b@example.com> {1700000000 + c} +0000',
                   f'data {len(msg)}', msg]
        if c > 1:
            stream.append(f'from :{c - 1}')
        touched = names if c == 1 else rng.sample(names, max(1, files // 20))
        for name in touched:
            blob = ''.join(rng.choice('abcdefghij \n') for _ in range(1024))
            stream += [f'M 100644 inline {name}', f'data {len(blob.encode())}', blob]
        if c == 1:
            for rel, text in fixed.items():
                stream += [f'M 100644 inline {rel}', f'data {len(text.encode())}', text]
    subprocess.run(['git', 'fast-import', '--quiet'], cwd=src, env=env, input='\n'.join(stream) + '\n', text=True,
                   check=True)
    sh(['git', 'checkout', '-q', '-f', 'main'], cwd=src, env=env)
    srv = WORK / 'srv'
    srv.mkdir()
    sh(['git', 'clone', '-q', '--bare', str(src), str(srv / 'bench.git')], env=env)
    sh(['git', 'config', 'uploadpack.allowReachableSHA1InWant', 'true'], cwd=srv / 'bench.git', env=env)
    sh(['git', 'gc', '-q'], cwd=srv / 'bench.git', env=env)
    return srv, sh(['git', 'rev-parse', 'HEAD'], cwd=src, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def connections(log: Path) -> int:
    return log.read_text().count('Connection from')


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    t = time.perf_counter()
    out = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(f'{" ".join(argv)} failed:\n{out.stderr[-3000:]}')
    return elapsed


def ms(values: list[float]) -> str:
    return f'{statistics.median(values) * 1000:.0f} ms'


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--repeat', type=int, default=5)
    ap.add_argument('--commits', type=int, default=300)
    ap.add_argument('--files', type=int, default=400)
    ap.add_argument('--out', default=str(REPO / 'benchmarks' / 'results' / 'git.md'))
    args = ap.parse_args()
    n = args.repeat

    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / 'home').mkdir(parents=True)
    venv = ensure_mlflow_venv()
    srv, sha = make_repo(args.commits, args.files)
    pack_bytes = sum(p.stat().st_size for p in (srv / 'bench.git' / 'objects').rglob('*') if p.is_file())

    log = WORK / 'daemon.log'
    port = free_port()
    with open(log, 'wb') as logf:
        daemon = subprocess.Popen(['git', 'daemon', f'--base-path={srv}', '--export-all', '--listen=127.0.0.1',
                                   f'--port={port}', '--reuseaddr', '--verbose', str(srv)],
                                  stdout=logf, stderr=subprocess.STDOUT, start_new_session=True, env=git_env())
    try:
        for _ in range(200):
            try:
                socket.create_connection(('127.0.0.1', port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        uri = f'git://127.0.0.1:{port}/bench.git'
        results = run_all(uri, sha, venv, log, n)
    finally:
        os.killpg(daemon.pid, 15)
        daemon.wait()

    load = os.getloadavg()
    lookup_ok = statistics.median(results['lookup']) <= 0.05 and not results['warm_connections']
    first_ok = statistics.median(results['resolve_cold']) <= statistics.median(results['mlflow_fetch'])
    lines = [
        '# Git sources: mlproj vs mlflow run',
        '',
        f'Machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}; '
        f'load average at the end {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} (shared machine: other jobs ran too).',
        f'pygit2 {results["pygit2"]} (libgit2 {results["libgit2"]}), mlflow {results["mlflow"]} '
        f'(mlflow-skinny venv, GitPython + git {results["git"]}).',
        f'Repository: {args.commits} commits, {args.files} files of ~1 KiB, {pack_bytes / 1e6:.1f} MB packed, '
        f'served by `git daemon` on 127.0.0.1; project in `#proj`, pinned with `-v <full sha>`, '
        f'`--env-manager local`, each tool with its own pre-created sqlite store. Median of {n}.',
        '',
        '## Source resolution only (in process)',
        '',
        '| step | mlproj `source.resolve()` (incl. checkout) '
        '| MLflow `_fetch_project` (depth-1 clone + checkout) | mlflow / mlproj |',
        '|---|---|---|---|',
        f'| first (empty cache) | {ms(results["resolve_cold"])} | {ms(results["mlflow_fetch"])} | '
        f'{statistics.median(results["mlflow_fetch"]) / statistics.median(results["resolve_cold"]):.1f}x |',
        f'| pinned rerun (warm cache) | {ms(results["resolve_warm"])} | {ms(results["mlflow_fetch"])} | '
        f'{statistics.median(results["mlflow_fetch"]) / statistics.median(results["resolve_warm"]):.0f}x |',
        '',
        f'The pinned rerun splits into: revision lookup in the cache (lock, open mirror, commit check, '
        f'no network) {ms(results["lookup"])}; writing the {results["files"]} files of the tree '
        f'{ms(results["export"])} (for scale: `tar -x` of the same tree takes {ms(results["tar"])} here).',
        '',
        f'Network during the {n} pinned mlproj reruns: {results["warm_connections"]} connections to the daemon '
        f'(MLflow: {results["mlflow_connections"]} for {n} fetches). `import pygit2` costs '
        f'{ms(results["import_pygit2"])} once per process, not included above.',
        '',
        '## End to end (`mlproj run` / `mlflow run`, subprocess)',
        '',
        '| run | mlproj run | mlflow run | mlflow / mlproj |',
        '|---|---|---|---|',
        f'| first run (empty cache) | {ms(results["run_cold"])} | {ms(results["mlflow_run"])} | '
        f'{statistics.median(results["mlflow_run"]) / statistics.median(results["run_cold"]):.1f}x |',
        f'| pinned rerun | {ms(results["run_warm"])} | {ms(results["mlflow_run"])} | '
        f'{statistics.median(results["mlflow_run"]) / statistics.median(results["run_warm"]):.1f}x |',
        '',
        'MLflow clones into a new temp dir on every run (and leaves it behind, mlflow#8437), so its first '
        'run and its rerun are the same measurement. End-to-end times are dominated by interpreter start-up, '
        '`import mlflow` and the sqlite store, identical work for both tools.',
        '',
        '## Targets (issue 4)',
        '',
        f'* Pinned rerun resolves its source with zero network in <= 50 ms: lookup {ms(results["lookup"])}, '
        f'{results["warm_connections"]} connections -> '
        f'{"met" if lookup_ok else "NOT met"}'
        f'. Materialising the fresh per-run checkout adds the file-writing time above (bounded by the '
        f'filesystem, like `tar -x`).',
        f'* First run no slower than MLflow\'s depth-1 clone: {ms(results["resolve_cold"])} vs '
        f'{ms(results["mlflow_fetch"])} -> '
        f'{"met" if first_ok else "NOT met"}'
        '. mlproj\'s first clone is shallow too (depth 1); history is completed once, on demand.',
        '',
    ]
    Path(args.out).write_text('\n'.join(lines))
    print('\n'.join(lines))
    return 0


def run_all(uri: str, sha: str, venv: Path, log: Path, n: int) -> dict:
    import pygit2

    from mlproj import source

    res: dict = {'pygit2': pygit2.__version__, 'libgit2': pygit2.LIBGIT2_VERSION,
                 'git': sh(['git', '--version']).split()[-1]}
    res['mlflow'] = sh([str(venv / 'bin' / 'python'), '-c', 'import mlflow; print(mlflow.__version__)'])
    res['import_pygit2'] = [float(sh([sys.executable, '-c',
                                      'import time; t = time.perf_counter(); import pygit2; '
                                      'print(time.perf_counter() - t)'])) for _ in range(n)]
    project_uri = f'{uri}#proj'

    # -- source only --------------------------------------------------------------------
    cold, warm = [], []
    for i in range(n):
        os.environ['MLPROJ_CACHE_DIR'] = str(WORK / f'cache-cold-{i}')
        t = time.perf_counter()
        src = source.resolve(project_uri, sha)
        cold.append(time.perf_counter() - t)
        src.cleanup()
    before = connections(log)
    for _ in range(n):
        t = time.perf_counter()
        src = source.resolve(project_uri, sha)
        warm.append(time.perf_counter() - t)
        src.cleanup()
    res['warm_connections'] = connections(log) - before
    res['resolve_cold'], res['resolve_warm'] = cold, warm

    # the warm path split in two: revision -> commit in the cache, and writing the files
    from mlproj.source.git import Fetcher
    from mlproj.source.tree import export_commit
    from mlproj.source.uri import parse

    parsed = parse(project_uri)
    lookup, export, tar = [], [], []
    for i in range(n):
        fetcher = Fetcher()
        mirror = fetcher.store.mirror(parsed.display)
        t = time.perf_counter()
        with mirror.lock():
            _m, repo, revision, _f = fetcher.resolve(parsed, sha)
        lookup.append(time.perf_counter() - t)
        dest = WORK / f'export-{i}'
        t = time.perf_counter()
        export_commit(repo, revision.commit, dest)
        export.append(time.perf_counter() - t)
        shutil.rmtree(dest)
        archive = WORK / 'tree.tar'
        sh(['git', 'archive', '-o', str(archive), sha], cwd=WORK / 'srv' / 'bench.git')
        (WORK / f'tar-{i}').mkdir()
        t = time.perf_counter()
        sh(['tar', '-C', str(WORK / f'tar-{i}'), '-xf', str(archive)])
        tar.append(time.perf_counter() - t)
        shutil.rmtree(WORK / f'tar-{i}')
    res['lookup'], res['export'], res['tar'] = lookup, export, tar
    res['files'] = int(sh(['git', 'ls-tree', '-r', '--name-only', sha], cwd=WORK / 'srv' / 'bench.git').count('\n')) + 1

    fetch_py = ('import sys, time, shutil\nfrom mlflow.projects import utils\n'
                'ts = []\n'
                'for _ in range(int(sys.argv[3])):\n'
                '    t = time.perf_counter()\n'
                '    d = utils._fetch_project(sys.argv[1], version=sys.argv[2])\n'
                '    ts.append(time.perf_counter() - t)\n'
                '    shutil.rmtree(d, ignore_errors=True)\n'
                'print(" ".join(map(str, ts)))\n')
    before = connections(log)
    out = sh([str(venv / 'bin' / 'python'), '-c', fetch_py, project_uri, sha, str(n)],
             env={**os.environ, 'GIT_TERMINAL_PROMPT': '0'})
    res['mlflow_connections'] = connections(log) - before
    res['mlflow_fetch'] = [float(x) for x in out.split()]

    # -- end to end -------------------------------------------------------------------
    mlproj_bin = str(Path(sys.executable).with_name('mlproj'))
    mlflow_bin = str(venv / 'bin' / 'mlflow')
    cwd = WORK / 'runs'
    cwd.mkdir()
    local_proj = WORK / 'src' / 'proj'
    env = {**os.environ, 'MLFLOW_TRACKING_URI': f'sqlite:///{WORK}/mlproj.db', 'GIT_TERMINAL_PROMPT': '0'}
    env_mlflow = {**env, 'MLFLOW_TRACKING_URI': f'sqlite:///{WORK}/mlflow.db'}
    timed([mlproj_bin, 'run', str(local_proj), '--env-manager', 'local'], env, cwd)  # creates the store
    timed([mlflow_bin, 'run', str(local_proj), '--env-manager', 'local'], env_mlflow, cwd)
    run_cold, run_warm, mlflow_run = [], [], []
    for i in range(n):
        env['MLPROJ_CACHE_DIR'] = str(WORK / f'cache-run-{i}')
        run_cold.append(timed([mlproj_bin, 'run', project_uri, '-v', sha, '--env-manager', 'local'], env, cwd))
        run_warm.append(timed([mlproj_bin, 'run', project_uri, '-v', sha, '--env-manager', 'local'], env, cwd))
        mlflow_run.append(timed([mlflow_bin, 'run', project_uri, '-v', sha, '--env-manager', 'local'],
                                env_mlflow, cwd))
    res['run_cold'], res['run_warm'], res['mlflow_run'] = run_cold, run_warm, mlflow_run
    return res


if __name__ == '__main__':
    sys.exit(main())
