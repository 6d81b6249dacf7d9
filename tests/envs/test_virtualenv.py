"""The virtualenv manager (MLflow's name) for real: virtualenv + pip, no pyenv."""
from __future__ import annotations

import os
import subprocess

import pytest

from mlproj.envs.store import EnvStore
from mlproj.errors import EnvError
from tests.envs.test_uv import make, prep, run_in


def test_create_then_reuse(tmp_path, offline_index, monkeypatch):
    proj = make(tmp_path, ['mlproj-tiny-b'])
    (proj / 'python_env.yaml').write_text((proj / 'python_env.yaml').read_text().replace(
        'build_dependencies: []', 'build_dependencies: [pip]'))
    env, log = prep(proj, 'virtualenv')
    assert 'Creating virtualenv environment virtualenv-' in log
    assert env.tag == 'virtualenv'
    assert (env.path / 'bin' / 'pip').exists()  # pip-based, like MLflow's
    assert run_in(env, 'import mlproj_tiny_a; print(mlproj_tiny_a.VERSION)') == '2.0'
    argv, child = env.argv('echo $VIRTUAL_ENV', dict(os.environ), proj)
    assert subprocess.run(argv, env=child, capture_output=True, text=True).stdout.strip() == str(env.path)
    monkeypatch.setattr(subprocess, 'Popen', lambda *a, **k: (_ for _ in ()).throw(AssertionError('subprocess')))
    again, log2 = prep(proj, 'virtualenv')
    assert again.path == env.path and log2 == ''


def test_uv_and_virtualenv_environments_are_distinct(tmp_path, offline_index):
    proj = make(tmp_path, ['mlproj-tiny-a'])
    a, _ = prep(proj, 'uv')
    b, _ = prep(proj, 'virtualenv')
    assert a.hash != b.hash and a.path != b.path


def test_bad_python_version(tmp_path):
    proj = make(tmp_path, [], python='2.5')
    with pytest.raises(EnvError, match=r"no installed Python matches python '2.5' .*no installer available"):
        prep(proj, 'virtualenv')


def test_unresolvable_dependency(tmp_path, offline_index):
    proj = make(tmp_path, ['mlproj-tiny-a==9.9'])
    with pytest.raises(EnvError) as e:
        prep(proj, 'virtualenv')
    assert str(e.value).startswith('installing dependencies failed:')
    assert 'mlproj-tiny-a==9.9' in str(e.value)
    assert list((EnvStore().root / '.store').iterdir()) == []


def test_malformed_python_env(tmp_path):
    proj = make(tmp_path, [])
    (proj / 'python_env.yaml').write_text('python: 3.10\n')
    with pytest.raises(EnvError, match=r'MLP017 python must be a string .*python_env.yaml:1:9\)$'):
        prep(proj, 'virtualenv')
