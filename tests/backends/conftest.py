"""Fixtures shared by the backend tests: a per-test MLflow file store, a client on it, a project
factory and `mlproj` as a subprocess."""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.helpers import mlproj_argv, write_project


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch):
    uri = (tmp_path / 'mlruns').as_uri()
    monkeypatch.setenv('MLFLOW_TRACKING_URI', uri)
    monkeypatch.setenv('MLFLOW_ALLOW_FILE_STORE', 'true')
    monkeypatch.setenv('MLPROJ_CACHE_DIR', str(tmp_path / 'cache'))
    for k in ('MLFLOW_EXPERIMENT_NAME', 'MLFLOW_EXPERIMENT_ID'):
        monkeypatch.delenv(k, raising=False)
    return uri


@pytest.fixture
def mlflow_client(tracking_uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri)


@pytest.fixture
def project(tmp_path):
    return lambda mlproject, files=None: write_project(tmp_path / 'proj', mlproject, files)


@pytest.fixture
def run_mlproj(tracking_uri, tmp_path):
    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(mlproj_argv(*args), capture_output=True, text=True, timeout=timeout,
                              cwd=tmp_path, env=dict(os.environ))
    return run
