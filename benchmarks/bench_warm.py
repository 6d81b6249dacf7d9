"""Warm run of a pandas + scikit-learn project under PYTHONDONTWRITEBYTECODE=1 (issue 13, case 8).

Run:  .venv/bin/python benchmarks/bench_warm.py [--repeat N] [--mlflow PATH] [--out benchmarks/results/warm.md]

Side by side, in one run, on the same project (python_env.yaml with the launcher's Python version,
pandas and scikit-learn; the command imports both and fits a small model) and the same kind of
tracking store (a file store per contender):

* `mlproj run` (uv)                           env reused (built once before timing)
* `mlflow run --env-manager virtualenv`       env reused (built once before timing; needs pyenv)

each with ``PYTHONDONTWRITEBYTECODE=1`` set (as in many CI images and containers) and unset. The
cause is also measured on its own: the project's import of pandas + sklearn in a uv venv built with
``--compile-bytecode`` vs one built without it (what mlproj did before), both under the variable.

The order of contenders alternates between rounds so the shared machine's noise favours neither.
Both launchers' own installs should be byte-compiled (as a plain ``pip install`` leaves them), or
the variable slows the launcher itself: the results file states the share of compiled modules of
the ``mlflow`` package in each launcher's environment.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / 'benchmarks' / '.work' / 'warm'
DEPS = ['pandas', 'scikit-learn']
TRAIN = '''import sys
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

rng = np.random.default_rng(0)
df = pd.DataFrame(rng.normal(size=(500, 4)), columns=list("abcd"))
y = (df.a + df.b > 0).astype(int)
X_train, X_test, y_train, y_test = train_test_split(df, y, random_state=0)
print("accuracy", LogisticRegression().fit(X_train, y_train).score(X_test, y_test))
'''


def sh(argv: list[str], env: dict, cwd: Path) -> str:
    out = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if out.returncode != 0:
        raise RuntimeError(f'{" ".join(argv)} failed:\n{out.stdout[-3000:]}')
    return out.stdout


def timed(argv: list[str], env: dict, cwd: Path) -> float:
    t = time.perf_counter()
    sh(argv, env, cwd)
    return time.perf_counter() - t


def make_project(root: Path) -> Path:
    version = '.'.join(map(str, sys.version_info[:3]))
    proj = root / 'proj'
    proj.mkdir(parents=True, exist_ok=True)
    (proj / 'MLproject').write_text('name: warm-bench\npython_env: python_env.yaml\nentry_points:\n  main:\n'
                                    '    command: "python train.py"\n')
    (proj / 'python_env.yaml').write_text(f'python: "{version}"\nbuild_dependencies:\n  - pip\ndependencies:\n'
                                          + ''.join(f'  - {d}\n' for d in DEPS))
    (proj / 'train.py').write_text(TRAIN)
    return proj


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--mlflow', default='/tmp/mlproj-test-mlflow-server-venv/bin/mlflow')
    ap.add_argument('--out', default=str(REPO / 'benchmarks' / 'results' / 'warm.md'))
    args = ap.parse_args()

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    proj = make_project(WORK)
    pyenv_bin = Path.home() / '.pyenv' / 'bin'
    base = dict(os.environ, MLFLOW_ALLOW_FILE_STORE='true', UV_CACHE_DIR=str(WORK / 'uv-cache'),
                PATH=f"{Path(sys.executable).parent}:{pyenv_bin}:{os.environ['PATH']}",
                MLPROJ_ENV_ROOT=str(WORK / 'mlproj-envs'), MLFLOW_ENV_ROOT=str(WORK / 'mlflow-envs'))
    base.pop('VIRTUAL_ENV', None)
    base.pop('PYTHONDONTWRITEBYTECODE', None)
    mlproj_bin = str(Path(sys.executable).with_name('mlproj'))
    contenders = {
        'mlproj run (uv)': lambda store: [mlproj_bin, 'run', str(proj), '--tracking-uri', store],
        'mlflow run --env-manager virtualenv': lambda store: [args.mlflow, 'run', str(proj), '--env-manager',
                                                              'virtualenv'],
    }

    def env_for(name: str, dont_write: bool) -> dict:
        store = (WORK / f'store-{name.split()[0]}').as_uri()
        env = dict(base, MLFLOW_TRACKING_URI=store)
        if dont_write:
            env['PYTHONDONTWRITEBYTECODE'] = '1'
        return env

    # build every environment once (not timed): the runs below are warm runs
    for name, argv in contenders.items():
        env = env_for(name, True)
        print(f'building: {name}', file=sys.stderr, flush=True)
        sh(argv(env['MLFLOW_TRACKING_URI']), env, WORK)

    # the cause in isolation: the same import in a compiled and an uncompiled uv venv
    from uv import find_uv_bin

    uv = find_uv_bin()
    interp = sys.executable
    for flavour, flags in (('compiled', ['--compile-bytecode']), ('uncompiled', [])):
        d = WORK / f'raw-{flavour}'
        sh([uv, 'venv', '-q', '--python', interp, str(d)], base, WORK)
        sh([uv, 'pip', 'install', '-q', '--python', str(d / 'bin' / 'python'), *flags, *DEPS], base, WORK)

    def compiled_share(python: str) -> str:
        code = ('import os, mlflow; d = os.path.dirname(mlflow.__file__); py = pyc = 0\n'
                'for r, _, fs in os.walk(d):\n'
                '    py += sum(f.endswith(".py") for f in fs); pyc += sum(f.endswith(".pyc") for f in fs)\n'
                'print(f"{pyc}/{py}")')
        return sh([python, '-c', code], dict(base, PYTHONDONTWRITEBYTECODE='1'), WORK).strip()

    launchers = (f'compiled .pyc / .py files of the mlflow package in the launchers: mlproj '
                 f'{compiled_share(sys.executable)}, mlflow {compiled_share(str(Path(args.mlflow).with_name("python")))}')
    results: dict[str, list[float]] = {}
    order = list(contenders)
    for i in range(args.repeat):
        for dont_write in (True, False):
            names = order if i % 2 == 0 else order[::-1]
            for name in names:
                env = env_for(name, dont_write)
                label = f'{name}, PYTHONDONTWRITEBYTECODE={"1" if dont_write else "unset"}'
                results.setdefault(label, []).append(timed(contenders[name](env['MLFLOW_TRACKING_URI']), env, WORK))
        for flavour in (('compiled', 'uncompiled') if i % 2 == 0 else ('uncompiled', 'compiled')):
            py = str(WORK / f'raw-{flavour}' / 'bin' / 'python')
            env = dict(base, PYTHONDONTWRITEBYTECODE='1')
            results.setdefault(f'train.py alone in a uv venv, {flavour}, PYTHONDONTWRITEBYTECODE=1', []).append(
                timed([py, str(proj / 'train.py')], env, WORK))
        print(f'round {i + 1}/{args.repeat} done', file=sys.stderr, flush=True)

    def med(label: str) -> float:
        return statistics.median(results[label])

    ours = med('mlproj run (uv), PYTHONDONTWRITEBYTECODE=1')
    theirs = med('mlflow run --env-manager virtualenv, PYTHONDONTWRITEBYTECODE=1')
    mlflow_version = sh([args.mlflow, '--version'], base, WORK).strip()
    lines = [
        '# Warm run of a pandas + scikit-learn project (issue 13, case 8)',
        '',
        f'Generated by `benchmarks/bench_warm.py --repeat {args.repeat}` on {time.strftime("%Y-%m-%d")}.',
        f'Machine: {os.cpu_count()} cores, **shared with other jobs and loaded** (few repetitions: read the '
        f'ratios, not the absolute times), {platform.platform()}, Python {platform.python_version()}, '
        f'{sh([uv, "--version"], base, WORK).strip()}, {mlflow_version} (full mlflow, for `mlflow run`).',
        f'Project: python_env.yaml with python "{platform.python_version()}", pip, {", ".join(DEPS)} (latest); '
        '`train.py` imports numpy, pandas, scikit-learn and fits a logistic regression on 500 rows. '
        'Each contender logs to its own file store. Environments were built once before timing.',
        f'Launchers: `mlflow` at {args.mlflow}; {launchers}.',
        '',
        '| measurement | median | samples |',
        '|---|---:|---:|',
    ]
    for label, values in results.items():
        lines.append(f'| {label} | {statistics.median(values):.2f} s | {len(values)} |')
    lines += [
        '',
        '## Target (issue 13)',
        '',
        f'- warm run under `PYTHONDONTWRITEBYTECODE=1`, mlproj vs `mlflow run --env-manager virtualenv`: '
        f'{ours:.2f} s vs {theirs:.2f} s = {ours / theirs:.2f}x -> {"met" if ours <= theirs else "NOT met"} '
        '(target <= 1.0x)',
        f'- the cause on its own: train.py in an uncompiled env '
        f'{med("train.py alone in a uv venv, uncompiled, PYTHONDONTWRITEBYTECODE=1"):.2f} s vs compiled '
        f'{med("train.py alone in a uv venv, compiled, PYTHONDONTWRITEBYTECODE=1"):.2f} s',
    ]
    text = '\n'.join(lines) + '\n'
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
