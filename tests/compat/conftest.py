"""Fixtures of the compatibility suite: MLflow's example project, re-expressed, and a local Git repo.

``example_project`` has the shape of the project MLflow's own ``tests/projects`` use as their
workhorse (entry points ``main``, ``greeter``, ``line_count`` with a ``path``, ``download_uri`` with
a ``uri``, ``sleep`` with an ``int``, ``test_tracking`` with a ``bool``), written here from its
description.  ``local_git_repo`` commits it at the root and under ``example_project/`` (so
``#example_project`` works), on ``master`` plus a ``test-branch``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MLPROJ = str(Path(sys.executable).with_name('mlproj'))

EXAMPLE_MLPROJECT = """\
name: example
entry_points:
  main:
    command: "echo 'Main entry point'"
  greeter:
    parameters:
      greeting: {type: string, default: "hi"}
      name: string
    command: "python greeter.py {greeting} {name}"
  line_count:
    parameters:
      path: path
    command: "wc -l < {path}"
  download_uri:
    parameters:
      uri: uri
    command: "echo {uri}"
  sleep:
    parameters:
      duration: int
    command: "sleep {duration}"
  test_tracking:
    parameters:
      use_start_run: bool
    command: "python tracking_test.py {use_start_run}"
"""

GREETER = """\
import argparse
p = argparse.ArgumentParser()
p.add_argument('greeting')
p.add_argument('name')
p.add_argument('--excitement', type=int, default=0)
a = p.parse_args()
print(f'{a.greeting} {a.name}' + '!' * a.excitement)
"""

TRACKING_TEST = """\
import sys
import mlflow
if sys.argv[1] == 'True':
    with mlflow.start_run():
        mlflow.log_metric('some_key', 3)
else:
    mlflow.log_metric('some_key', 3)
"""


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = directory / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return directory


@pytest.fixture
def example_project(tmp_path) -> Path:
    return write(tmp_path / 'example_project', {'MLproject': EXAMPLE_MLPROJECT, 'greeter.py': GREETER,
                                               'tracking_test.py': TRACKING_TEST})


def git_env(home: Path) -> dict[str, str]:
    return {**os.environ, 'HOME': str(home), 'GIT_CONFIG_GLOBAL': os.devnull, 'GIT_CONFIG_NOSYSTEM': '1',
            'GIT_AUTHOR_NAME': 't', 'GIT_AUTHOR_EMAIL': 't@example.com', 'GIT_COMMITTER_NAME': 't',
            'GIT_COMMITTER_EMAIL': 't@example.com'}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(['git', *args], cwd=cwd, env=git_env(cwd), check=True, capture_output=True,
                          text=True).stdout.strip()


def commit_all(repo: Path, message: str = 'commit') -> str:
    git(repo, 'add', '-A')
    git(repo, 'commit', '-qm', message)
    return git(repo, 'rev-parse', 'HEAD')


@pytest.fixture
def local_git_repo(tmp_path, example_project) -> Path:
    repo = tmp_path / 'git_repo'
    shutil.copytree(example_project, repo)
    shutil.copytree(example_project, repo / 'example_project')
    git(repo, 'init', '-q', '-b', 'master')
    commit_all(repo, 'initial')
    git(repo, 'branch', 'test-branch')
    return repo


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    """A file store (fast to create); runs are read back with MlflowClient."""
    monkeypatch.setenv('MLFLOW_ALLOW_FILE_STORE', 'true')
    monkeypatch.delenv('MLFLOW_TRACKING_URI', raising=False)
    monkeypatch.delenv('MLFLOW_EXPERIMENT_NAME', raising=False)
    monkeypatch.delenv('MLFLOW_EXPERIMENT_ID', raising=False)
    return (tmp_path / 'mlruns').as_uri()


def mlproj(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180
           ) -> subprocess.CompletedProcess:
    """`mlproj ARGS` as a real subprocess: exit codes and stderr exactly as a user sees them."""
    # `python` in project commands (`--env-manager local`) is this interpreter, which has mlflow
    path = f'{Path(sys.executable).parent}{os.pathsep}{os.environ.get("PATH", os.defpath)}'
    return subprocess.run([MLPROJ, *args], cwd=cwd, env={**os.environ, 'PATH': path, **(env or {})},
                          capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def runs(store_uri: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store_uri)
    out = []
    for exp in client.search_experiments():
        out += client.search_runs([exp.experiment_id])
    return out
