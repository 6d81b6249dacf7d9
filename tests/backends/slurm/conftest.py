"""Fixtures of the slurm backend tests (see slurm_helpers for the cluster)."""
from __future__ import annotations

import pytest

from tests.backends.slurm.slurm_helpers import SlurmCluster


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
