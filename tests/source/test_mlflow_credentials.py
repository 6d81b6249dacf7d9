"""MLflow's documented Git credentials against the real HTTPS git http-backend with basic auth.

The Databricks guide passes Git credentials "via the git-username and git-password arguments (or
via the MLFLOW_GIT_USERNAME and MLFLOW_GIT_PASSWORD environment variables)".  Both work with
``mlproj run``, are tried before every other credential, are never printed, kept in the cache or
handed to the project's processes; a password on the command line works with a warning.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import run_mlproj
from tests.helpers.git import git
from tests.helpers.source import TOKEN, USER
from tests.source.test_credentials import _files_containing


@pytest.fixture
def private(https_server, tls_cert, monkeypatch, tmp_path):
    monkeypatch.setenv('SSL_CERT_FILE', tls_cert[0])
    for name in ('MLFLOW_GIT_USERNAME', 'MLFLOW_GIT_PASSWORD'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('MLPROJ_CACHE_DIR', str(tmp_path / 'cache'))
    return f'https://127.0.0.1:{https_server}/private/proj.git'


def _dry_run(url: str, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_mlproj('run', url + '#sub/folder', '-v', 'feature', '--dry-run', '--json', *extra, env=env,
                      timeout=90)


def _no_token(r: subprocess.CompletedProcess, cache: Path) -> None:
    assert TOKEN not in r.stdout and TOKEN not in r.stderr
    assert _files_containing(cache, TOKEN) == []


def test_environment_variables_fetch_a_private_repository(repos, private, tmp_path):
    r = _dry_run(private, env={'MLFLOW_GIT_USERNAME': USER, 'MLFLOW_GIT_PASSWORD': TOKEN})
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan['commit'] == repos.sha['D']
    assert plan['tags']['mlflow.source.git.repoURL'] == private
    assert 'warning' not in r.stderr
    _no_token(r, tmp_path / 'cache')


def test_command_line_options_work_and_warn_about_argv(repos, private, tmp_path):
    r = _dry_run(private, '--git-username', USER, '--git-password', TOKEN)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)['commit'] == repos.sha['D']
    assert r.stderr.splitlines() == ['mlproj: warning: --git-password is visible to other users of this machine '
                                     '(ps, /proc); set MLFLOW_GIT_PASSWORD instead']
    assert TOKEN not in r.stderr and TOKEN not in r.stdout  # the warning does not echo the value
    assert _files_containing(tmp_path / 'cache', TOKEN) == []


def test_command_line_password_with_the_username_from_the_environment(repos, private):
    r = _dry_run(private, '--git-password', TOKEN, env={'MLFLOW_GIT_USERNAME': USER})
    assert r.returncode == 0, r.stderr


def test_wrong_password_is_one_line_naming_what_was_tried_never_the_value(private, tmp_path):
    wrong = 'not-the-password-0123'
    r = _dry_run(private, env={'MLFLOW_GIT_USERNAME': USER, 'MLFLOW_GIT_PASSWORD': wrong})
    assert r.returncode == 67
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith('mlproj: error: authentication to 127.0.0.1:') and '(tried: MLFLOW_GIT_PASSWORD' in line
    assert wrong not in r.stderr and wrong not in r.stdout
    r = _dry_run(private, '--git-username', USER, '--git-password', wrong)
    assert r.returncode == 67 and '(tried: --git-password' in r.stderr and wrong not in r.stderr


def test_mlflow_variables_come_before_the_credential_helper(private, tmp_path):
    # the helper records that it was asked: with MLflow's variables set it is never reached
    marker = tmp_path / 'helper-asked'
    home = Path(os.environ['HOME'])
    helper = f'!f() {{ touch {marker}; echo username={USER}; echo password={TOKEN}; }}; f'
    git('config', '--file', str(home / '.gitconfig'), 'credential.helper', helper)
    r = _dry_run(private, env={'MLFLOW_GIT_USERNAME': USER, 'MLFLOW_GIT_PASSWORD': TOKEN})
    assert r.returncode == 0, r.stderr
    assert not marker.exists()
    # and the helper still works on its own, so the assertion above could fail
    r = _dry_run(private)
    assert r.returncode == 0, r.stderr
    assert marker.exists()


def test_the_password_never_reaches_the_project(repos, private, tmp_path):
    store = tmp_path / 'mlruns'
    r = run_mlproj('run', private + '#sub/folder', '-v', 'feature', '--env-manager', 'local',
                   '--tracking-uri', store.as_uri(),
                   env={'MLFLOW_GIT_USERNAME': USER, 'MLFLOW_GIT_PASSWORD': TOKEN, 'MLFLOW_ALLOW_FILE_STORE': 'true'},
                   timeout=180)
    assert r.returncode == 0, r.stderr
    info = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith('{')][-1])
    assert info['version'] == 'D'
    assert info['env_has_token'] is False  # MLFLOW_GIT_PASSWORD removed from the child's environment
    assert _files_containing(store, TOKEN) == []
    assert TOKEN not in r.stderr
