"""How a project's environment maps onto a Ray runtime_env (no cluster needed)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from mlproj.backends.ray import runtime_env_for
from mlproj.errors import BackendError, EnvError
from mlproj.spec import load_project
from tests.conftest import write_project as make_project

CONDA = '''name: tutorial
channels: [conda-forge]
dependencies:
  - python=3.11
  - pip
  - numpy=1.26
  - scikit-learn>=1.3
  - conda-forge::pandas=2.1.*
  - pip:
      - mlflow>=2.9
      - -r extra.txt
'''


PY_ENV_PROJECT = 'name: t\npython_env: python_env.yaml\nentry_points:\n  main:\n    command: x\n'


def launch_for(proj, manager, tracking_uri='http://tracking:5000'):
    project = load_project(proj)
    return SimpleNamespace(project=project, env_manager=manager, project_dir=proj, tracking_uri=tracking_uri,
                           run_env={'MLFLOW_RUN_ID': 'r1', 'MLFLOW_TRACKING_URI': tracking_uri})


def test_conda_yaml_maps_to_pip_requirements(tmp_path):
    proj = make_project(tmp_path / 'p', 'name: t\nconda_env: conda.yaml\nentry_points:\n  main:\n    command: x\n',
                        {'conda.yaml': CONDA, 'extra.txt': 'six==1.17.0  # comment\n\n'})
    env, label = runtime_env_for(launch_for(proj, 'uv'), {})
    assert label == 'pip'
    assert env['pip'] == {'packages': ['numpy==1.26.*', 'scikit-learn>=1.3', 'pandas==2.1.*', 'mlflow>=2.9',
                                       'six==1.17.0']}
    assert env['working_dir'] == str(proj)
    assert env['env_vars'] == {'MLFLOW_RUN_ID': 'r1', 'MLFLOW_TRACKING_URI': 'http://tracking:5000'}
    assert env['excludes'] == ['.git', 'mlruns', '__pycache__']


def test_conda_manager_passes_the_conda_spec(tmp_path):
    proj = make_project(tmp_path / 'p', 'name: t\nconda_env: conda.yaml\nentry_points:\n  main:\n    command: x\n',
                        {'conda.yaml': CONDA, 'extra.txt': ''})
    env, label = runtime_env_for(launch_for(proj, 'conda'), {'pip_installer': 'uv'})
    assert label == 'conda'
    assert 'name' not in env['conda'] and env['conda']['dependencies'][0] == 'python=3.11'
    assert 'pip' not in env and 'uv' not in env


def test_local_manager_uses_the_cluster_python_and_user_runtime_env_merges(tmp_path):
    proj = make_project(tmp_path / 'p', PY_ENV_PROJECT,
                        {'python_env.yaml': 'python: "3.11"\ndependencies: [six]\n'})
    store = (proj / 'mlruns').as_uri()
    config = {'runtime_env': {'env_vars': {'A': '1', 'MLFLOW_RUN_ID': 'spoofed'}, 'excludes': ['*.ckpt'],
                              'py_modules': ['x']}}
    env, label = runtime_env_for(launch_for(proj, 'local', store), config)
    assert label == 'cluster' and 'pip' not in env
    assert env['env_vars']['A'] == '1' and env['env_vars']['MLFLOW_RUN_ID'] == 'r1'  # run variables win
    assert env['excludes'] == ['.git', 'mlruns', '__pycache__', '/mlruns', '*.ckpt']
    assert env['py_modules'] == ['x']


def test_docker_projects_are_refused(tmp_path):
    proj = make_project(tmp_path / 'p', 'name: t\ndocker_env:\n  image: python:3.11\nentry_points:\n  main:\n'
                                        '    command: x\n')
    with pytest.raises(BackendError, match='docker_env projects cannot run on Ray'):
        runtime_env_for(launch_for(proj, 'docker'), {})


def test_python_env_with_conda_manager_is_refused(tmp_path):
    proj = make_project(tmp_path / 'p', PY_ENV_PROJECT,
                        {'python_env.yaml': 'python: "3.11"\n'})
    with pytest.raises(EnvError, match='cannot be run with --env-manager conda'):
        runtime_env_for(launch_for(proj, 'conda'), {})


def test_missing_requirements_file_names_it(tmp_path):
    proj = make_project(tmp_path / 'p', PY_ENV_PROJECT,
                        {'python_env.yaml': 'python: "3.11"\ndependencies: ["-r nope.txt"]\n'})
    with pytest.raises(EnvError, match="cannot read requirements file 'nope.txt'"):
        runtime_env_for(launch_for(proj, 'uv'), {})
