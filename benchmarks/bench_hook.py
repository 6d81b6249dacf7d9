"""Benchmark the pre-commit hook environment: mlproj's against check-jsonschema's and yamllint's.

What a user pays the first time a hook runs: `pre-commit install-hooks` with a fresh
PRE_COMMIT_HOME (pre-commit builds one virtualenv per hook repository), the size of that
environment on disk and how many distributions it holds.

- mlproj: the real thing, `repo: <a Git repository of this work tree>` + `rev: <its commit>`
  (pre-commit clones it and `pip install`s it, with no extras: the base dependencies only).
- check-jsonschema and yamllint: their hook repositories are on GitHub, which these machines
  cannot reach, so each is a `repo: local` hook with `language: python` and
  `additional_dependencies: [<package>==<version>]`. pre-commit then builds the same kind of
  virtualenv and pip-installs the same package and dependencies from PyPI that their own
  `.pre-commit-hooks.yaml` install does (their repo hook is a `pip install .` of that package),
  plus a placeholder package of a few kB.

Two rows per hook: "cold" (fresh PRE_COMMIT_HOME and an empty pip cache: every wheel is
downloaded) and "warm pip cache" (fresh PRE_COMMIT_HOME, the pip cache of the previous run).

    python benchmarks/bench_hook.py [--repeat 2] [--out benchmarks/results/hook.md]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PRE_COMMIT = str(Path(sys.executable).with_name('pre-commit'))
VERSIONS = {'check-jsonschema': '0.39.0', 'yamllint': '1.38.0'}


def _env(base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(('GIT_', 'PRE_COMMIT', 'VIRTUAL_ENV'))}
    env.update(HOME=str(base / 'home'), GIT_CONFIG_NOSYSTEM='1', GIT_AUTHOR_NAME='b', GIT_AUTHOR_EMAIL='b@example.com',
               GIT_COMMITTER_NAME='b', GIT_COMMITTER_EMAIL='b@example.com', PRE_COMMIT_COLOR='never')
    (base / 'home').mkdir(parents=True, exist_ok=True)
    return env


def _git(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    return subprocess.run(['git', *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def snapshot_repo(dest: Path, env: dict[str, str]) -> str:
    """This work tree's files (tracked and untracked, not ignored) committed to a new repository."""
    listed = subprocess.run(['git', 'ls-files', '-z', '-co', '--exclude-standard'], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split('\0')
    for rel in filter(None, listed):
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    _git(['init', '-q'], dest, env)
    _git(['add', '-A'], dest, env)
    _git(['commit', '-q', '-m', 'snapshot'], dest, env)
    return _git(['rev-parse', 'HEAD'], dest, env).strip()


def configs(hook_repo: Path, rev: str) -> dict[str, str]:
    return {
        'mlproj (this branch)': f'repos:\n  - repo: {hook_repo}\n    rev: {rev}\n    hooks:\n      - id: mlproj-lint\n',
        **{
            name: ('repos:\n  - repo: local\n    hooks:\n'
                   f'      - id: {name}\n        name: {name}\n        entry: {name}\n        language: python\n'
                   f'        additional_dependencies: ["{name}=={version}"]\n')
            for name, version in VERSIONS.items()
        },
    }


def _du(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def measure(config: str, base: Path, pip_cache: Path, env: dict[str, str]) -> tuple[float, int, int]:
    work = base / 'work'
    work.mkdir(parents=True)
    (work / '.pre-commit-config.yaml').write_text(config)
    _git(['init', '-q'], work, env)
    run_env = dict(env, PRE_COMMIT_HOME=str(base / 'pre-commit-home'), PIP_CACHE_DIR=str(pip_cache))
    started = time.monotonic()
    proc = subprocess.run([PRE_COMMIT, 'install-hooks'], cwd=work, env=run_env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    (env_dir,) = [p for p in (base / 'pre-commit-home').glob('repo*/py_env-*')]
    names = subprocess.run([str(env_dir / 'bin' / 'python'), '-c',
                            'import importlib.metadata as m, json; print(json.dumps([d.metadata["Name"] for d in '
                            'm.distributions()]))'], capture_output=True, text=True, check=True).stdout
    return elapsed, _du(env_dir), len(set(json.loads(names)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--repeat', type=int, default=2)
    parser.add_argument('--out', default=None)
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix='mlproj-bench-hook-') as tmp:
        tmp_path = Path(tmp)
        env = _env(tmp_path)
        hook_repo = tmp_path / 'mlproj-hook-repo'
        rev = snapshot_repo(hook_repo, env)
        for name, config in configs(hook_repo, rev).items():
            for mode in ('cold', 'warm pip cache'):
                times, size, count = [], 0, 0
                pip_cache = tmp_path / f'pip-cache-{len(rows)}'
                for i in range(args.repeat):
                    if mode == 'cold' and pip_cache.exists():
                        shutil.rmtree(pip_cache)
                    if mode == 'warm pip cache' and i == 0:
                        measure(config, tmp_path / f'prime-{len(rows)}', pip_cache, env)  # fills the cache
                    base = tmp_path / f'run-{len(rows)}-{i}'
                    elapsed, size, count = measure(config, base, pip_cache, env)
                    times.append(elapsed)
                    shutil.rmtree(base, ignore_errors=True)
                rows.append((name, mode, statistics.median(times), min(times), size, count))
                print(rows[-1], flush=True)
    load_end = os.getloadavg()[0]
    lines = [
        '# pre-commit hook environment benchmark',
        '',
        f'Machine: {platform.system()} {platform.release()}, {os.cpu_count()} cores, Python '
        f'{platform.python_version()}, load average {load_start:.2f} at start, {load_end:.2f} at the end '
        + ('(no other jobs running).' if max(load_start, load_end) < 2.5 else
           '(a shared machine: other jobs were running; wall times are inflated by the load).'),
        f'Command: `python benchmarks/bench_hook.py --repeat {args.repeat}` (median and best of the repeats).',
        '',
        'mlproj: `repo:` a Git repository of this work tree + `rev:`; check-jsonschema '
        f'{VERSIONS["check-jsonschema"]} and yamllint {VERSIONS["yamllint"]}: `repo: local`, `language: python`, '
        '`additional_dependencies: [<package>==<version>]` (their GitHub hook repositories are not reachable '
        'here; pre-commit builds the same virtualenv and installs the same packages from PyPI). Size: bytes of '
        'files in the hook virtualenv (pip, setuptools and the placeholder package included); packages: '
        'distributions in it.',
        '',
        '| hook | pip cache | install-hooks median | best | env size | packages |',
        '|---|---|---:|---:|---:|---:|',
        '| mlproj before the split (issue 16, measured then) | as then | 16–27 s | | 218 MB | 53 |',
    ]
    for name, mode, med, best, size, count in rows:
        lines.append(f'| {name} | {mode} | {med:.1f} s | {best:.1f} s | {size / 1e6:.0f} MB | {count} |')
    text = '\n'.join(lines) + '\n'
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == '__main__':
    main()
