"""The pre-commit hook as a user gets it: `repo:` + `rev:` of this repository, a fresh PRE_COMMIT_HOME.

One hook environment is built per module (from a temporary Git repository holding this work tree's
files, committed) and shared by the tests: what it installs, a typo'd key failing the hook, an env
file staged alone failing it, warnings shown on a passing run, one summary for 30 files.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.helpers.git import IDENTITY, run_git

pytestmark = pytest.mark.slow  # builds a hook virtualenv from PyPI

PRE_COMMIT = str(Path(sys.executable).with_name('pre-commit'))
# What the hook environment may hold: mlproj, its base dependencies, and what virtualenv seeds.
ALLOWED = {'mlproj', 'click', 'pyyaml', 'pathspec', 'tomli', 'pip', 'setuptools', 'wheel'}
RUN_ONLY = {'mlflow', 'mlflow-skinny', 'sqlalchemy', 'alembic', 'pygit2', 'uv', 'packaging'}


def _git(args, cwd, env):
    return run_git(*args, cwd=cwd, env=env).stdout


@pytest.fixture(scope='module')
def hook(tmp_path_factory):
    """(env, hook repository path, rev): this work tree's files committed to a temporary repository."""
    base = tmp_path_factory.mktemp('hook')
    home = base / 'home'
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(('GIT_', 'PRE_COMMIT', 'VIRTUAL_ENV'))}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM='1', XDG_CONFIG_HOME=str(home / '.config'),
               **IDENTITY, PRE_COMMIT_HOME=str(base / 'pre-commit-home'),
               PRE_COMMIT_COLOR='never', PIP_CACHE_DIR=str(base / 'pip-cache'))
    repo = base / 'mlproj-hook-repo'
    listed = run_git('ls-files', '-z', '-co', '--exclude-standard', cwd=REPO).stdout.split('\0')
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / rel)
    _git(['init', '-q'], repo, env)
    _git(['add', '-A'], repo, env)
    _git(['commit', '-q', '-m', 'snapshot'], repo, env)
    rev = _git(['rev-parse', 'HEAD'], repo, env).strip()
    return env, repo, rev


def _work_repo(path: Path, hook, files: dict[str, str]) -> Path:
    env, repo, rev = hook
    path.mkdir()
    (path / '.pre-commit-config.yaml').write_text(
        f'repos:\n  - repo: {repo}\n    rev: {rev}\n    hooks:\n      - id: mlproj-lint\n      - id: mlproj-misnamed\n')
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    _git(['init', '-q'], path, env)
    _git(['add', '-A'], path, env)
    return path


def _pre_commit(args, cwd, hook):
    return subprocess.run([PRE_COMMIT, *args], cwd=cwd, env=hook[0], capture_output=True, text=True, timeout=600)


def _hook_env_dir(hook) -> Path:
    home = Path(hook[0]['PRE_COMMIT_HOME'])
    envs = [p for p in home.glob('repo*/py_env-*') if (p / 'bin' / 'mlproj').exists()]
    assert len(envs) == 1, envs
    return envs[0]


GOOD = 'name: ok\nentry_points:\n  main:\n    command: "echo hi"\n'


def test_hook_env_installs_only_what_linting_needs(tmp_path, hook):
    work = _work_repo(tmp_path / 'w', hook, {'p/MLproject': GOOD})
    proc = _pre_commit(['install-hooks'], work, hook)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env_dir = _hook_env_dir(hook)
    listing = subprocess.run([str(env_dir / 'bin' / 'python'), '-c',
                              'import importlib.metadata as m, json; '
                              'print(json.dumps(sorted({d.metadata["Name"].lower() for d in m.distributions()})))'],
                             capture_output=True, text=True, check=True)
    names = set(json.loads(listing.stdout))
    assert 'mlproj' in names and not names & RUN_ONLY, sorted(names)
    assert names <= ALLOWED, sorted(names - ALLOWED)
    # every command that needs the run extra says so in one line (exit 69), never a traceback
    for args in (['run', str(REPO / 'examples' / 'tutorial'), '-e', 'train'], ['show', str(REPO / 'examples' / 'tutorial')]):
        r = subprocess.run([str(env_dir / 'bin' / 'mlproj'), *args], cwd=tmp_path, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 69, r.stderr
        assert r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr
        assert re.match(r'mlproj: error: mlproj \w+ needs \w+, which is not installed: pip install "mlproj\[run\]"',
                        r.stderr), r.stderr
    # the same environment through `pre-commit try-repo` (no config file)
    tried = _pre_commit(['try-repo', str(hook[1]), 'mlproj-lint', '--files', 'p/MLproject'], work, hook)
    assert tried.returncode == 0 and re.search(r'mlproj lint\.+Passed', tried.stdout), tried.stdout + tried.stderr
    assert len({p for p in Path(hook[0]['PRE_COMMIT_HOME']).glob('repo*/py_env-*')}) == 1  # reused, not rebuilt


def test_typo_of_a_top_level_key_fails_the_hook(tmp_path, hook):
    work = _work_repo(tmp_path / 'w', hook, {'MLproject': 'name: t\nentry_point:\n  main:\n    command: "true"\n'})
    proc = _pre_commit(['run'], work, hook)
    assert proc.returncode == 1, proc.stdout
    assert re.search(r'mlproj lint\.+Failed', proc.stdout)
    assert "MLproject:2:1: MLP030 error: unknown key 'entry_point' in MLproject (did you mean 'entry_points'?)" \
        in proc.stdout


def test_a_staged_broken_env_file_alone_fails_the_hook(tmp_path, hook):
    env = hook[0]
    work = _work_repo(tmp_path / 'w', hook, {
        'proj/MLproject': 'name: e\npython_env: python_env.yaml\nentry_points:\n  main:\n    command: "true"\n',
        'proj/python_env.yaml': 'python: "3.10"\ndependencies: []\n',
        'other/requirements.txt': 'requests\n',  # used by no MLproject: passed to the hook, nothing to lint
    })
    _git(['commit', '-q', '-m', 'good'], work, env)
    (work / 'proj' / 'python_env.yaml').write_text('python: 3.10\ndependencies: []\n')  # the float 3.1
    (work / 'other' / 'requirements.txt').write_text('requests>=2\n')
    _git(['add', 'proj/python_env.yaml', 'other/requirements.txt'], work, env)
    proc = _pre_commit(['run'], work, hook)
    assert proc.returncode == 1, proc.stdout
    assert re.search(r'mlproj lint\.+Failed', proc.stdout)
    assert 'proj/python_env.yaml:1:9: MLP017 error: python must be a string' in proc.stdout
    assert 'mlproj lint: 1 error (1 file checked)' in proc.stdout


def test_warnings_show_on_a_passing_run_and_30_files_give_one_summary(tmp_path, hook):
    files = {f'p{i:02d}/MLproject': GOOD for i in range(29)}
    files['w/MLproject'] = ('name: w\nentry_points:\n  main:\n    parameters: {seed: {type: int, default: 0}}\n'
                            '    command: "true"\n')
    work = _work_repo(tmp_path / 'w', hook, files)
    proc = _pre_commit(['run', '--all-files'], work, hook)
    assert proc.returncode == 0, proc.stdout
    assert re.search(r'mlproj lint\.+Passed', proc.stdout)
    assert "w/MLproject:4:18: MLP016 warning: parameter 'seed'" in proc.stdout  # verbose: shown although it passed
    summaries = [line for line in proc.stdout.splitlines() if line.startswith('mlproj lint:')]
    assert summaries == ['mlproj lint: 1 warning (30 files checked)'], proc.stdout
