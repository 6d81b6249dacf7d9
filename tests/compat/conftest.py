"""Fixtures of the compatibility suite: MLflow's example project, re-expressed, and a local Git repo.

``example_project`` has the shape of the project MLflow's own ``tests/projects`` use as their
workhorse (entry points ``main``, ``greeter``, ``line_count`` with a ``path``, ``download_uri`` with
a ``uri``, ``sleep`` with an ``int``, ``test_tracking`` with a ``bool``), written here from its
description.  ``local_git_repo`` commits it at the root and under ``example_project/`` (so
``#example_project`` works), on ``master`` plus a ``test-branch``.  Plain helpers: ``tests.helpers.compat``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers.compat import write
from tests.helpers.git import commit_all, git

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


@pytest.fixture
def example_project(tmp_path) -> Path:
    return write(tmp_path / 'example_project', {'MLproject': EXAMPLE_MLPROJECT, 'greeter.py': GREETER,
                                               'tracking_test.py': TRACKING_TEST})


@pytest.fixture
def local_git_repo(tmp_path, example_project) -> Path:
    repo = tmp_path / 'git_repo'
    shutil.copytree(example_project, repo)
    shutil.copytree(example_project, repo / 'example_project')
    git('init', '-q', '-b', 'master', cwd=repo)
    commit_all(repo, 'initial')
    git('branch', 'test-branch', cwd=repo)
    return repo


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    """A file store (fast to create); runs are read back with MlflowClient."""
    monkeypatch.setenv('MLFLOW_ALLOW_FILE_STORE', 'true')
    monkeypatch.delenv('MLFLOW_TRACKING_URI', raising=False)
    monkeypatch.delenv('MLFLOW_EXPERIMENT_NAME', raising=False)
    monkeypatch.delenv('MLFLOW_EXPERIMENT_ID', raising=False)
    return (tmp_path / 'mlruns').as_uri()
