"""conda / mamba / micromamba through a strict recording fake (no conda can run here), and conda-to-uv for real."""
from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from mlproj.envs import select_manager
from mlproj.errors import EnvError
from mlproj.spec import load_project
from tests.envs.test_uv import prep, run_in
from tests.helpers.envs import conda_calls, py_version, write_project

CONDA_YAML = 'name: demo\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - numpy\n'
MLPROJECT = 'name: demo\nconda_env: conda.yaml\nentry_points:\n  main:\n    command: "echo $CONDA_DEFAULT_ENV"\n'


def conda_project(tmp_path, text: str = CONDA_YAML):
    return write_project(tmp_path / 'cproj', {'MLproject': MLPROJECT, 'conda.yaml': text})


def mlflow_name(text: str) -> str:
    return 'mlflow-' + hashlib.sha1(text.encode()).hexdigest()


def run_argv(env, command: str, cwd) -> str:
    argv, child = env.argv(command, dict(os.environ), cwd)
    out = subprocess.run(argv, env=child, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_conda_on_path_is_the_default_and_creates_with_mlflows_argv(tmp_path, fake_conda, monkeypatch):
    monkeypatch.setenv('PATH', f"{fake_conda / 'bin'}:{os.environ['PATH']}")
    proj = conda_project(tmp_path)
    assert select_manager(load_project(proj), None) == 'conda'
    env, log = prep(proj, None)
    name = mlflow_name(CONDA_YAML)
    conda = str(fake_conda / 'bin' / 'conda')
    assert conda_calls(fake_conda) == [
        ['conda', 'env', 'list', '--json'],
        ['conda', 'env', 'create', '-n', name, '--file', str(proj / 'conda.yaml')],
        ['conda', 'env', 'list', '--json'],
        ['conda', 'list', '--explicit', '--md5', '--prefix', str(fake_conda / 'envs' / name)],
    ]
    assert 'Creating conda environment' in log
    assert env.tag == 'conda' and env.name == name
    assert env.hash == hashlib.sha256(CONDA_YAML.encode()).hexdigest()
    # activation as MLflow does it without CONDA_EXE: source <bin>/activate <name> 1>&2
    argv, _ = env.argv('echo hi', {}, proj)
    assert argv == ['bash', '-c', f'source {fake_conda}/bin/activate {name} 1>&2 && echo hi']
    assert run_argv(env, 'echo $CONDA_DEFAULT_ENV; command -v python', proj).split() == [
        name, str(fake_conda / 'envs' / name / 'bin' / 'python')]
    assert conda.endswith('conda')
    # reuse: no call to conda at all
    before = len(conda_calls(fake_conda))
    again, log2 = prep(proj, None)
    assert again.prefix == env.prefix and log2 == '' and len(conda_calls(fake_conda)) == before


def test_conda_home_and_create_cmd(tmp_path, fake_conda, monkeypatch):
    monkeypatch.setenv('MLFLOW_CONDA_HOME', str(fake_conda))
    monkeypatch.setenv('MLFLOW_CONDA_CREATE_ENV_CMD', 'mamba')
    proj = conda_project(tmp_path)
    env, _ = prep(proj, 'conda')
    name = mlflow_name(CONDA_YAML)
    assert conda_calls(fake_conda)[1] == ['mamba', 'env', 'create', '-n', name, '--file', str(proj / 'conda.yaml')]
    conda_sh = fake_conda / 'etc' / 'profile.d' / 'conda.sh'
    argv, _ = env.argv('true', {}, proj)
    assert argv == ['bash', '-c', f'source {conda_sh} && conda activate {name} 1>&2 && true']
    assert run_argv(env, 'echo $CONDA_DEFAULT_ENV', proj) == name
    assert (fake_conda / 'activations.log').read_text().split() == ['conda.sh', 'activate', name]


def test_existing_env_made_by_mlflow_is_reused(tmp_path, fake_conda, monkeypatch):
    monkeypatch.setenv('PATH', f"{fake_conda / 'bin'}:{os.environ['PATH']}")
    proj = conda_project(tmp_path)
    (fake_conda / 'envs' / mlflow_name(CONDA_YAML) / 'conda-meta').mkdir(parents=True)
    prep(proj, 'conda')
    prefix = str(fake_conda / 'envs' / mlflow_name(CONDA_YAML))
    assert conda_calls(fake_conda) == [['conda', 'env', 'list', '--json'],
                                       ['conda', 'list', '--explicit', '--md5', '--prefix', prefix]]


def test_failed_create_is_removed_and_reported(tmp_path, fake_conda, monkeypatch):
    monkeypatch.setenv('PATH', f"{fake_conda / 'bin'}:{os.environ['PATH']}")
    text = CONDA_YAML + '  - FAIL\n'
    proj = conda_project(tmp_path, text)
    with pytest.raises(EnvError) as e:
        prep(proj, 'conda')
    assert str(e.value).startswith('conda env create failed: ResolvePackageNotFound')
    assert str(e.value).endswith(f"({proj / 'conda.yaml'})")
    name = mlflow_name(text)
    assert conda_calls(fake_conda)[-1] == ['conda', 'remove', '--yes', '--name', name, '--all']
    assert not (fake_conda / 'envs' / name).exists()


def test_micromamba_alone(tmp_path, fake_conda, monkeypatch):
    only = tmp_path / 'mm'
    only.mkdir()
    (only / 'micromamba').symlink_to(fake_conda / 'bin' / 'micromamba')
    monkeypatch.setenv('PATH', f"{only}:{os.environ['PATH']}")
    proj = conda_project(tmp_path)
    env, _ = prep(proj, None)
    name = mlflow_name(CONDA_YAML)
    assert conda_calls(fake_conda)[1] == ['micromamba', 'env', 'create', '-n', name, '--file',
                                          str(proj / 'conda.yaml'), '--yes']
    assert conda_calls(fake_conda)[3] == ['micromamba', 'env', 'export', '--explicit', '--md5', '--prefix',
                                          str(fake_conda / 'envs' / name)]
    assert env.lock_sha256 and '@EXPLICIT' in env.lock_path.read_text()
    argv, _ = env.argv('echo x', {}, proj)
    assert argv == [str(only / 'micromamba'), 'run', '-n', name, 'bash', '-c', 'echo x']
    assert run_argv(env, 'echo $CONDA_DEFAULT_ENV', proj) == name


def test_run_records_conda_tag(tmp_path, fake_conda, monkeypatch, file_store):
    import mlflow

    import mlproj

    monkeypatch.setenv('PATH', f"{fake_conda / 'bin'}:{os.environ['PATH']}")
    proj = conda_project(tmp_path)
    submitted = mlproj.run(str(proj), 'main', tracking_uri=file_store)
    tags = mlflow.MlflowClient(file_store).get_run(submitted.run_id).data.tags
    assert tags['mlflow.project.env'] == 'conda'
    assert tags['mlproj.env.hash'] == hashlib.sha256(CONDA_YAML.encode()).hexdigest()
    # the exact package set: conda's explicit spec, as an artifact whose sha256 is the lock tag
    client = mlflow.MlflowClient(file_store)
    local = client.download_artifacts(submitted.run_id, 'mlproj/conda.explicit.txt', str(tmp_path / 'dl'))
    text = open(local).read()
    assert tags['mlproj.env.lock_sha256'] == hashlib.sha256(text.encode()).hexdigest()
    lines = text.splitlines()
    assert lines[lines.index('@EXPLICIT') + 1:] == [
        f'https://conda.anaconda.org/conda-forge/linux-64/{n}-{v}-0.conda#{hashlib.md5(s.encode()).hexdigest()}'
        for s, n, v in (('python=3.11', 'python', '3.11'), ('numpy', 'numpy', '1.0'))]
    # taken once per environment: a second run lists nothing and records the same lock
    listed = [c for c in conda_calls(fake_conda) if c[1:3] == ['list', '--explicit']]
    again = mlproj.run(str(proj), 'main', tracking_uri=file_store)
    assert [c for c in conda_calls(fake_conda) if c[1:3] == ['list', '--explicit']] == listed and len(listed) == 1
    assert client.get_run(again.run_id).data.tags['mlproj.env.lock_sha256'] == tags['mlproj.env.lock_sha256']


def test_a_conda_that_cannot_list_is_a_warning_and_no_lock(tmp_path, fake_conda, monkeypatch):
    monkeypatch.setenv('PATH', f"{fake_conda / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv('FAKE_CONDA_LIST_FAIL', '1')
    env, log = prep(conda_project(tmp_path), 'conda')
    assert env.lock_sha256 is None and env.extra_tags == {} and env.artifacts == {}
    assert 'mlproj: warning: the conda environment is not locked: conda list --explicit gave no explicit list' in log
    assert 'CondaError: cannot list' in log
    assert run_argv(env, 'echo $CONDA_DEFAULT_ENV', tmp_path) == mlflow_name(CONDA_YAML)  # the run goes on


def test_conda_refused_for_python_env_and_env_less_projects(tmp_path, fake_conda, monkeypatch):
    monkeypatch.setenv('PATH', f"{fake_conda / 'bin'}:{os.environ['PATH']}")
    py = write_project(tmp_path / 'py', {'MLproject': 'python_env: python_env.yaml\n',
                                         'python_env.yaml': 'python: "3.11"\n'})
    with pytest.raises(EnvError, match='a python_env project cannot be executed using conda'):
        select_manager(load_project(py), 'conda')
    bare = write_project(tmp_path / 'bare', {'MLproject': 'name: x\n'})
    with pytest.raises(EnvError, match='a project without a conda_env cannot be executed using conda'):
        select_manager(load_project(bare), 'conda')


def test_conda_exe_pointing_nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv('CONDA_EXE', str(tmp_path / 'nope' / 'bin' / 'conda'))
    proj = conda_project(tmp_path)
    with pytest.raises(EnvError, match='Could not find Conda executable at'):
        prep(proj, 'conda')


def test_conda_requested_without_any_conda(tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', '/usr/bin:/bin')
    proj = conda_project(tmp_path)
    with pytest.raises(EnvError, match='no conda, mamba or micromamba executable found'):
        prep(proj, 'conda')


def test_conda_to_uv_for_real(tmp_path, offline_index, monkeypatch):
    monkeypatch.setenv('PATH', '/usr/bin:/bin')  # no conda anywhere: the default falls back to uv
    text = (f'name: t\nchannels: [conda-forge]\ndependencies:\n  - python={py_version()}\n  - pip\n'
            '  - mlproj-tiny-a=1.0\n  - pip:\n      - mlproj-tiny-pandas>=2\n')
    proj = conda_project(tmp_path, text)
    assert select_manager(load_project(proj), None) == 'uv'
    env, log = prep(proj, None)
    assert env.tag == 'uv'
    assert run_in(env, 'import mlproj_tiny_a, mlproj_tiny_pandas; print(mlproj_tiny_a.VERSION)') == '1.0'
    assert (env.path / 'bin' / 'pip').exists()  # `pip` became a build dependency
    venv_env, _ = prep(proj, 'virtualenv')
    assert run_in(venv_env, 'import mlproj_tiny_pandas; print(mlproj_tiny_pandas.VERSION)') == '2.1'


def test_conda_to_uv_lists_unmappable_packages_before_any_run(tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', '/usr/bin:/bin')
    proj = conda_project(tmp_path, 'dependencies:\n  - python=3.11\n  - cudatoolkit=11.8\n  - r-base\n')
    with pytest.raises(EnvError) as e:
        select_manager(load_project(proj), None)
    assert 'conda packages with no PyPI equivalent: cudatoolkit=11.8' in str(e.value)
    assert 'r-base' in str(e.value)
