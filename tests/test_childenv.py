"""The child-environment policy (mlproj.childenv): unit rules, and what real children see.

The end-to-end tests read the environment *as the child itself sees it*: the project's command
(and, for the env build, an in-tree PEP 517 build backend of a ``./pkg`` dependency that uv builds)
copies its own ``/proc/self/environ`` to a file.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlproj import childenv
from tests.helpers import mlproj_bin, write_project

# every name the policy withholds from the project's processes, with a unique value each
WITHHELD_FROM_RUN = ('MLPROJ_GIT_TOKEN', 'MLPROJ_SSH_KEY_PASSPHRASE', 'MLPROJ_SSH_KEY', 'MLPROJ_GIT_USERNAME',
                     'MLPROJ_SOMETHING_TOKEN', 'GITHUB_TOKEN', 'GH_TOKEN', 'GH_ENTERPRISE_TOKEN',
                     'ACTIONS_RUNTIME_TOKEN', 'ACTIONS_ID_TOKEN_REQUEST_TOKEN', 'ACTIONS_ID_TOKEN_REQUEST_URL',
                     'INPUT_GITHUB-TOKEN', 'INPUT_TOKEN', 'DATABRICKS_TOKEN', 'DATABRICKS_CLIENT_SECRET')
PASSED_TO_RUN_ONLY = ('MLFLOW_TRACKING_TOKEN', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY',
                      'AZURE_STORAGE_CONNECTION_STRING', 'GOOGLE_APPLICATION_CREDENTIALS')


def secret_env() -> dict[str, str]:
    names = WITHHELD_FROM_RUN + PASSED_TO_RUN_ONLY + ('MY_SETTING', 'EXPLICIT_GH')
    return {n: f'v-{n.lower()}-{secrets.token_hex(8)}' for n in names}


def read_environ(path: Path) -> dict[str, str]:
    out = {}
    for item in path.read_bytes().split(b'\0'):
        if b'=' in item:
            k, v = item.split(b'=', 1)
            out[k.decode()] = v.decode()
    return out


# ------------------------------------------------------------------------------------------
# the rules


def test_policy_table():
    env = {**secret_env(), 'PATH': '/bin', 'MLFLOW_CONDA_HOME': '/c', 'MLPROJ_CACHE_DIR': '/x'}
    run = childenv.environment('run', base=env, tracking_uri='sqlite:////tmp/x.db')
    build = childenv.environment('build', base=env, tracking_uri='sqlite:////tmp/x.db')
    for n in WITHHELD_FROM_RUN:
        assert n not in run and n not in build, n
    for n in PASSED_TO_RUN_ONLY:
        assert run[n] == env[n] and n not in build, n
    for n in ('PATH', 'MY_SETTING', 'MLFLOW_CONDA_HOME', 'MLPROJ_CACHE_DIR'):
        assert run[n] == build[n] == env[n]


def test_databricks_secrets_reach_only_runs_logging_to_databricks():
    env = {'DATABRICKS_HOST': 'https://x', 'DATABRICKS_TOKEN': 'dapi1', 'DATABRICKS_CLIENT_SECRET': 's'}
    assert childenv.environment('run', base=env, tracking_uri='databricks') == env
    assert childenv.environment('run', base=env, tracking_uri='databricks://profile') == env
    assert childenv.environment('run', base=env, tracking_uri='http://127.0.0.1:5000') == {'DATABRICKS_HOST': 'https://x'}
    assert childenv.environment('build', base=env, tracking_uri='databricks') == {'DATABRICKS_HOST': 'https://x'}
    assert childenv.environment('run', base={**env, 'MLFLOW_REGISTRY_URI': 'databricks-uc'},
                                tracking_uri='sqlite:///x')['DATABRICKS_TOKEN'] == 'dapi1'


def test_explicit_pass_by_flag_and_env_var():
    env = {'GITHUB_TOKEN': 'g', 'GH_TOKEN': 'h', 'AWS_SECRET_ACCESS_KEY': 'a', 'MLPROJ_PASS_ENV': ' GH_TOKEN, ,'}
    assert childenv.environment('run', base=env, pass_env=['GITHUB_TOKEN']) == env
    assert childenv.environment('build', base=env, pass_env=['AWS_SECRET_ACCESS_KEY'])['AWS_SECRET_ACCESS_KEY'] == 'a'
    assert 'GITHUB_TOKEN' not in childenv.environment('run', base=env)
    assert childenv.withheld('run', base=env) == ['GITHUB_TOKEN']


def test_strip_ci_secrets_mutates_only_ci_names():
    env = {'GITHUB_TOKEN': 't', 'ACTIONS_RUNTIME_TOKEN': 'r', 'input_x': 'i', 'DATABRICKS_TOKEN': 'd', 'PATH': '/b',
           'ACTIONS_ID_TOKEN_REQUEST_TOKEN': 'o'}
    assert childenv.strip_ci_secrets(env) == ['ACTIONS_RUNTIME_TOKEN', 'GITHUB_TOKEN', 'input_x']
    # the OIDC pair stays in mlproj's own process (databricks-sdk), never in a child's
    assert env == {'DATABRICKS_TOKEN': 'd', 'PATH': '/b', 'ACTIONS_ID_TOKEN_REQUEST_TOKEN': 'o'}
    assert 'ACTIONS_ID_TOKEN_REQUEST_TOKEN' not in childenv.environment('run', base=env)


# ------------------------------------------------------------------------------------------
# real children


@pytest.mark.slow
def test_run_child_sees_none_of_the_withheld_secrets(tmp_path):
    out = tmp_path / 'environ'
    proj = write_project(tmp_path / 'p', textwrap.dedent(f'''\
        entry_points:
          main:
            command: "{sys.executable} -c 'import shutil, sys; shutil.copyfile(\\"/proc/self/environ\\", sys.argv[1])' {out}"
    '''))
    values = secret_env()
    env = {**os.environ, **values, 'MLFLOW_TRACKING_URI': f'sqlite:///{tmp_path}/m.db'}
    r = subprocess.run([mlproj_bin(), 'run', str(proj), '--pass-env', 'EXPLICIT_GH'], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    seen = read_environ(out)
    blob = out.read_bytes().decode()
    for n in WITHHELD_FROM_RUN:
        assert n not in seen and values[n] not in blob, n
    for n in PASSED_TO_RUN_ONLY + ('MY_SETTING', 'EXPLICIT_GH'):
        assert seen[n] == values[n], n
    assert seen['MLFLOW_RUN_ID'] and seen['MLFLOW_TRACKING_URI'].startswith('sqlite:')
    for n in WITHHELD_FROM_RUN:  # and none of it is printed either
        assert values[n] not in r.stdout + r.stderr


BACKEND = textwrap.dedent('''\
    """A PEP 517 backend that records the environment it runs in, then builds a minimal wheel."""
    import base64, hashlib, os, shutil, zipfile

    def _record_environ():
        shutil.copyfile('/proc/self/environ', os.environ['MLPROJ_TEST_ENVIRON_OUT'])

    def get_requires_for_build_wheel(config_settings=None):
        return []

    def _h(data):
        return 'sha256=' + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()

    def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
        _record_environ()
        files = {'spy_pkg/__init__.py': b'',
                 'spy_pkg-0.1.dist-info/METADATA': b'Metadata-Version: 2.1\\nName: spy-pkg\\nVersion: 0.1\\n',
                 'spy_pkg-0.1.dist-info/WHEEL': b'Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n'}
        record = ''.join(f'{p},{_h(d)},{len(d)}\\n' for p, d in files.items()) + 'spy_pkg-0.1.dist-info/RECORD,,\\n'
        files['spy_pkg-0.1.dist-info/RECORD'] = record.encode()
        name = 'spy_pkg-0.1-py3-none-any.whl'
        with zipfile.ZipFile(os.path.join(wheel_directory, name), 'w') as z:
            for p, d in files.items():
                z.writestr(p, d)
        return name
''')


@pytest.mark.slow
def test_in_tree_build_backend_sees_none_of_the_secrets_during_a_uv_build(tmp_path, monkeypatch):
    out = tmp_path / 'build-environ'
    py = f'{sys.version_info[0]}.{sys.version_info[1]}'
    proj = write_project(tmp_path / 'p', 'python_env: python_env.yaml\nentry_points:\n  main:\n    command: "true"\n', {
        'python_env.yaml': f'python: "{py}"\ndependencies:\n  - ./pkg\n',
        'pkg/pyproject.toml': '[build-system]\nrequires = []\nbuild-backend = "spy_backend"\nbackend-path = ["."]\n\n'
                              '[project]\nname = "spy-pkg"\nversion = "0.1"\n',
        'pkg/spy_backend.py': BACKEND,
    })
    values = secret_env()
    env = {**os.environ, **values, 'MLFLOW_TRACKING_URI': f'sqlite:///{tmp_path}/m.db',
           'MLPROJ_TEST_ENVIRON_OUT': str(out), 'MLPROJ_ENV_ROOT': str(tmp_path / 'envs'),
           'UV_CACHE_DIR': str(tmp_path / 'uv-cache'), 'UV_NO_INDEX': '1', 'UV_PYTHON_DOWNLOADS': 'never',
           'MLPROJ_PASS_ENV': 'EXPLICIT_GH'}
    env.pop('VIRTUAL_ENV', None)
    r = subprocess.run([mlproj_bin(), 'run', str(proj), '--env-manager', 'uv'], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert out.exists(), 'the build backend did not run'
    seen = read_environ(out)
    blob = out.read_bytes().decode()
    for n in WITHHELD_FROM_RUN + PASSED_TO_RUN_ONLY:
        assert n not in seen and values[n] not in blob, n
    assert seen['MY_SETTING'] == values['MY_SETTING'] and seen['EXPLICIT_GH'] == values['EXPLICIT_GH']
