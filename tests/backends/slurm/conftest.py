"""Fixtures of the slurm backend tests (see slurm_helpers for the cluster)."""
from __future__ import annotations

import os
import subprocess

import pytest
from tests.backends.slurm.slurm_helpers import SlurmCluster, make_project, mlproj_argv


@pytest.fixture(scope='session')
def slurm():
    cluster = SlurmCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def slurm_env(slurm, tracking_uri, monkeypatch, tmp_path):
    monkeypatch.setenv('SLURM_CONF', str(slurm.conf))
    shared = tmp_path / 'shared'
    monkeypatch.setenv('MLPROJ_SLURM_SHARED_DIR', str(shared))
    return shared


@pytest.fixture
def project(tmp_path):
    return lambda mlproject, files=None: make_project(tmp_path / 'proj', mlproject, files)


@pytest.fixture
def run_mlproj(tracking_uri, tmp_path):
    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(mlproj_argv(*args), capture_output=True, text=True, timeout=timeout,
                              cwd=tmp_path, env=dict(os.environ))
    return run
