"""Shared fixtures: isolated caches, a real `mlflow server` on loopback, sqlite stores."""
from __future__ import annotations

import os

import pytest

from tests.helpers import free_port, start_mlflow_server, stop_group

# The fast lane (`pytest -m "not slow"`) leaves out every test that starts a real server or
# engine, builds a real environment, or drives mlproj as a subprocess. A test is slow when it uses
# one of these fixtures (directly or through another fixture), or when its module says so with
# `pytestmark = pytest.mark.slow`; the fixture list keeps new tests in the right lane by default.
SLOW_FIXTURES = frozenset({
    # real servers and engines
    'mlflow_server', 'tracking_server', 'git_daemon', 'http_server', 'https_server', 'sshd',
    'docker_engine', 'docker_host', 'containers', 'ray_head', 'ray_client', 'slurm', 'slurm_env',
    # strict fakes whose tests run mlproj end to end in subprocesses
    'workspace', 'kube', 'fake_github', 'plugin_site',
    # subprocess drivers, package indexes, wheels and env builds
    'run_mlproj', 'resolve_process', 'offline_index', 'hanging_index', 'wheelhouse', 'make_wheel',
    'uv_cache', 'fake_conda', 'url_for', 'repos',
    # MLflow or mypy run as processes: a store created by MlflowClient, the typed-API check
    'base_store', 'mypy_cache',
})


def pytest_collection_modifyitems(config, items):
    slow = pytest.mark.slow
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, 'fixturenames', ())):
            item.add_marker(slow)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Keep every test away from the user's caches and MLflow store."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv('MLPROJ_CACHE_DIR', str(base / 'mlproj-cache'))
    monkeypatch.setenv('XDG_CONFIG_HOME', str(base / 'xdg-config'))  # no user config file
    monkeypatch.setenv('MLPROJ_KILL_GRACE', os.environ.get('MLPROJ_KILL_GRACE', '3'))
    monkeypatch.delenv('MLFLOW_EXPERIMENT_NAME', raising=False)
    monkeypatch.delenv('MLFLOW_EXPERIMENT_ID', raising=False)
    monkeypatch.delenv('MLFLOW_RUN_ID', raising=False)
    monkeypatch.setenv('GIT_TERMINAL_PROMPT', '0')


@pytest.fixture(scope='module')
def sqlite_store(tmp_path_factory) -> str:
    """One sqlite tracking store per test module (creating the schema takes ~2 s)."""
    d = tmp_path_factory.mktemp('store')
    return f'sqlite:///{d}/mlflow.db'


@pytest.fixture(scope='session')
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` (sqlite backend) on 127.0.0.1; yields its http URI."""
    d = tmp_path_factory.mktemp('mlflow-server')
    port = free_port()
    proc = start_mlflow_server(d, port, '--default-artifact-root', str(d / 'artifacts'))
    try:
        yield f'http://127.0.0.1:{port}'
    finally:
        stop_group(proc)
