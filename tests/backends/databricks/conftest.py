"""Fixtures for the databricks backend: the strict fake workspace, its environment, a Git project
(its token: ``tests.helpers.backends.DATABRICKS_TOKEN``).

Tracking goes to the real ``mlflow server`` of ``tests/conftest.py`` (the databricks backend, like
MLflow's, refuses local sqlite/file stores: the cluster could never write to them).  The fake
workspace's "cluster" runs the uploaded launcher on this machine, so the cluster-side
``mlproj run --run-id`` talks to the same server.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.backends.databricks.databricks_fake import FakeWorkspace
from tests.helpers.backends import DATABRICKS_TOKEN as TOKEN
from tests.helpers.git import commit_all, git

MLPROJECT = '''\
name: dbx-demo
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      word: {type: string, default: hello}
    command: "python train.py --alpha {alpha} --word {word}"
  sleep:
    parameters:
      seconds: {type: float, default: 120}
    command: "python sleep.py {seconds}"
  fail:
    command: "python fail.py"
  quick:
    command: "python -c 'print(\\"quick run\\")'"
'''

TRAIN = '''\
import argparse, os
import mlflow

p = argparse.ArgumentParser()
p.add_argument('--alpha', type=float)
p.add_argument('--word')
a = p.parse_args()
print(f'TRAIN alpha={a.alpha} word={a.word!r} run={os.environ["MLFLOW_RUN_ID"]}', flush=True)
print('TOKEN-IN-ENV=' + str(any('dapi' in v for v in os.environ.values())), flush=True)
mlflow.log_metric('alpha_sq', a.alpha ** 2)
'''

SLEEP = '''\
import sys, time
print('sleeping', flush=True)
time.sleep(float(sys.argv[1]))
print('woke up', flush=True)
'''

FAIL = '''\
import sys
print('about to fail', flush=True)
sys.exit(3)
'''


@pytest.fixture
def repo(tmp_path) -> Path:
    """A Git repository whose project lives in ``proj/``, with ignored secrets and MLflow leftovers."""
    root = tmp_path / 'repo'
    proj = root / 'proj'
    (proj / 'build').mkdir(parents=True)
    (proj / 'mlruns' / '0').mkdir(parents=True)
    (root / 'other').mkdir()
    (root / '.gitignore').write_text('secrets.env\nbuild/\n*.log\n')
    (proj / 'MLproject').write_text(MLPROJECT)
    (proj / 'train.py').write_text(TRAIN)
    (proj / 'sleep.py').write_text(SLEEP)
    (proj / 'fail.py').write_text(FAIL)
    (proj / 'data.csv').write_text('x,y\n1,2\n')
    (proj / 'secrets.env').write_text(f'DATABRICKS_TOKEN={TOKEN}\n')
    (proj / 'build' / 'artifact.bin').write_text('built')
    (proj / 'debug.log').write_text('log')
    (proj / 'mlruns' / '0' / 'meta.yaml').write_text('name: Default\n')
    (proj / 'mlflow.db').write_text('not a db')
    (root / 'other' / 'README.md').write_text('not part of the project')
    git('init', '-q', '-b', 'main', cwd=root)
    commit_all(root, 'init')
    (proj / 'untracked.txt').write_text('untracked but not ignored')
    return root


@pytest.fixture
def workspace(tmp_path):
    fake = FakeWorkspace(tmp_path / 'workspace', TOKEN).start()
    try:
        yield fake
    finally:
        fake.stop()
    assert fake.violations == [], fake.violations


@pytest.fixture(scope='session')
def tracking_server(request) -> str:
    """The shared real ``mlflow server``; MLPROJ_TEST_MLFLOW_URI points at one already running (local runs)."""
    return os.environ.get('MLPROJ_TEST_MLFLOW_URI') or request.getfixturevalue('mlflow_server')


@pytest.fixture
def dbx_env(workspace, tracking_server, monkeypatch, tmp_path):
    """DATABRICKS_HOST/TOKEN for the fake, no ~/.databrickscfg, tracking on the real MLflow server."""
    for name in list(os.environ):
        if name.startswith(('DATABRICKS_', 'ARM_', 'AZURE_', 'GOOGLE_')) or name.startswith('MLFLOW_TRACKING_'):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('DATABRICKS_HOST', workspace.url)
    monkeypatch.setenv('DATABRICKS_TOKEN', TOKEN)
    monkeypatch.setenv('DATABRICKS_CONFIG_FILE', str(tmp_path / 'no-databrickscfg'))
    monkeypatch.setenv('MLFLOW_TRACKING_URI', tracking_server)
    # each test in its own experiment, so that its runs are easy to find on the shared server
    monkeypatch.setenv('MLFLOW_EXPERIMENT_NAME', f'dbx-{uuid.uuid4().hex}')
    return tracking_server


@pytest.fixture(scope='session')
def mlflow_client(tracking_server):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_server)
