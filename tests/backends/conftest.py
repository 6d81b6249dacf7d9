"""Fixtures shared by the backend tests: a per-test MLflow file store and a client on it."""
from __future__ import annotations

import pytest


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
