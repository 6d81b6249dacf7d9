"""How a project's environment maps onto a Ray runtime_env (no cluster needed)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from mlproj.backends.ray import runtime_env_for
from mlproj.errors import BackendError, EnvError
from mlproj.spec import load_project
from tests.helpers import write_project as make_project

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
    # exactly what the uv manager installs (mlproj.envs.envfiles), with extra.txt inlined
    assert env['pip'] == {'packages': ['pip', 'numpy==1.26.*', 'scikit-learn>=1.3', 'pandas==2.1.*', 'mlflow>=2.9',
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
    assert env['conda']['channels'] == ['conda-forge']
    # Ray writes the spec to a directory of its own: the pip section's files are inlined
    assert env['conda']['dependencies'][-1] == {'pip': ['mlflow>=2.9']}
    assert 'pip' not in env and 'uv' not in env


CONDA_PROJECT = 'name: t\nconda_env: conda.yaml\nentry_points:\n  main:\n    command: x\n'


def test_conda_only_packages_are_refused_for_pip_as_by_the_uv_manager(tmp_path):
    proj = make_project(tmp_path / 'p', CONDA_PROJECT,
                        {'conda.yaml': 'dependencies:\n  - python=3.11\n  - cudatoolkit=11.8\n  - numpy\n'})
    with pytest.raises(EnvError, match='conda packages with no PyPI equivalent: cudatoolkit=11.8'):
        runtime_env_for(launch_for(proj, 'uv'), {})
    env, _ = runtime_env_for(launch_for(proj, 'conda'), {})  # conda itself installs them
    assert env['conda']['dependencies'] == ['python=3.11', 'cudatoolkit=11.8', 'numpy']


def test_env_files_are_validated_as_for_every_backend(tmp_path):
    proj = make_project(tmp_path / 'p', PY_ENV_PROJECT, {'python_env.yaml': 'python: 3.10\ndependencies: [six]\n'})
    with pytest.raises(EnvError, match=r'MLP017 python must be a string such as "3.11"') as info:
        runtime_env_for(launch_for(proj, 'uv'), {})
    assert info.value.where.endswith('python_env.yaml:1:9')
    bad = make_project(tmp_path / 'q', CONDA_PROJECT, {'conda.yaml': 'dependencies: numpy\n'})
    for manager in ('uv', 'conda'):
        with pytest.raises(EnvError, match='MLP017 dependencies must be a list'):
            runtime_env_for(launch_for(bad, manager), {})


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
    with pytest.raises(EnvError, match="MLP017 requirements file 'nope.txt' does not exist"):
        runtime_env_for(launch_for(proj, 'uv'), {})
