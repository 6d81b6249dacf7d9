"""Install the test plugin package for discovery: a ``.dist-info`` with ``entry_points.txt`` next to
the package in a temp dir that the mlproj subprocess gets on ``PYTHONPATH`` (what a pip install
produces, without pip)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ENTRY_POINTS = '''[mlflow.project_backend]
recording = mlproj_testplugin:RecordingBackend
broken = mlproj_testplugin:BrokenBackend
mlflow-local = mlflow.projects.backend.local:LocalBackend
unloadable = mlproj_testplugin.missing:Nothing

[mlproj.backends]
native = mlproj_testplugin.native
'''


@pytest.fixture
def plugin_site(tmp_path):
    site = tmp_path / 'site'
    shutil.copytree(Path(__file__).parent / 'plugin_src', site)
    dist = site / 'mlproj_testplugin-0.1.dist-info'
    dist.mkdir()
    (dist / 'METADATA').write_text('Metadata-Version: 2.1\nName: mlproj-testplugin\nVersion: 0.1\n')
    (dist / 'entry_points.txt').write_text(ENTRY_POINTS)
    (dist / 'RECORD').write_text('')
    return site


@pytest.fixture
def tracking_uri(tracking_uri, tmp_path, monkeypatch):  # the shared file store, plus the plugin's record
    monkeypatch.setenv('TESTPLUGIN_RECORD', str(tmp_path / 'record.json'))
    return tracking_uri


@pytest.fixture
def project(tmp_path):
    root = tmp_path / 'proj'
    root.mkdir()
    (root / 'MLproject').write_text('name: plug\nentry_points:\n  main:\n'
                                    '    parameters:\n      x: {type: int, default: 1}\n'
                                    '    command: "echo main x={x} run=$MLFLOW_RUN_ID"\n')
    return root


@pytest.fixture
def mlproj_env(plugin_site, tracking_uri):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (str(plugin_site), env.get('PYTHONPATH')) if p)
    return env


@pytest.fixture
def run_mlproj(mlproj_env, tmp_path):
    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, '-m', 'mlproj', *args], capture_output=True, text=True,
                              timeout=timeout, cwd=tmp_path, env=mlproj_env)
    return run
