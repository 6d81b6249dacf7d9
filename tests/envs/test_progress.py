"""What a cold environment build shows while it runs: the installer's own progress on a terminal,
its summary lines (no control sequences) in a log, everything with --verbose, nothing with --quiet."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from mlproj.envs.steps import plain
from tests.helpers import mlproj_bin
from tests.helpers.envs import py_version, write_project

MARK = 'PROJECT-COMMAND-RAN'


def project(tmp_path: Path, dep: str = 'mlproj-tiny-a==1.0') -> Path:
    return write_project(tmp_path / 'proj', {
        'MLproject': 'name: p\npython_env: python_env.yaml\nentry_points:\n  main:\n'
                     f'    command: "python -c \'import sys; print(\\"{MARK}\\")\'"\n',
        'python_env.yaml': f'python: "{py_version()}"\ndependencies:\n  - {dep}\n',
    })


def environ(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, 'MLFLOW_TRACKING_URI': f'sqlite:///{tmp_path}/mlflow.db'}
    for name in ('NO_COLOR', 'FORCE_COLOR', 'MLPROJ_QUIET', 'MLPROJ_VERBOSE', 'MLPROJ_DEBUG'):
        env.pop(name, None)
    return env


def on_terminal(args: list[str], tmp_path: Path) -> tuple[int, str]:
    """Run mlproj under a pseudo-terminal (script(1), as the clone-progress test does)."""
    cmd = shlex.join([mlproj_bin(), *args])
    r = subprocess.run(['script', '-qefc', cmd, '/dev/null'], cwd=tmp_path, env=environ(tmp_path),
                       capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout.decode('utf-8', 'replace')


def piped(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([mlproj_bin(), *args], cwd=tmp_path, env=environ(tmp_path), capture_output=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def test_a_cold_uv_build_on_a_terminal_streams_uvs_own_progress_before_the_command_runs(tmp_path, offline_index):
    code, out = on_terminal(['run', str(project(tmp_path)), '--env-manager', 'uv'], tmp_path)
    assert code == 0, out
    build = out[out.index('=== Creating uv environment'):out.index('=== Running command')]
    text = plain(build)
    # uv's own lines, written while the environment was built (before mlproj ran the command) ...
    assert re.search(r'Resolved 1 package in ', text) and re.search(r'Installed 1 package in ', text), out
    assert '+ mlproj-tiny-a==1.0' in text
    # ... by a uv that saw a terminal: it styles its output (and draws its spinners) only on one
    assert '\x1b[' in build
    assert out.index(MARK) > out.index('=== Running command')


@pytest.mark.parametrize('manager, lines', [
    ('uv', [r'Resolved 1 package in \S+', r'Installed 1 package in \S+']),
    ('virtualenv', [r'Successfully installed mlproj-tiny-a-1\.0']),
])
def test_a_cold_build_into_a_pipe_prints_only_summary_lines_without_control_sequences(tmp_path, offline_index,
                                                                                        manager, lines):
    r = piped(['run', str(project(tmp_path)), '--env-manager', manager], tmp_path)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert '\x1b' not in err and '\r' not in err
    build = err[err.index(f'=== Creating {manager} environment'):err.index('=== Running command')].splitlines()[1:]
    extra = 1 if manager == 'uv' else 0   # uv may add `Prepared 1 package in ...` (not when its cache has it)
    assert len(lines) <= len(build) <= len(lines) + extra, build
    for pattern in lines:
        assert any(re.fullmatch(pattern, ln) for ln in build), build
    assert r.stdout.decode() == MARK + '\n'


def test_verbose_shows_the_installers_full_output_without_a_terminal(tmp_path, offline_index):
    r = piped(['run', '--verbose', str(project(tmp_path)), '--env-manager', 'uv'], tmp_path)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    build = err[err.index('=== Creating uv environment'):err.index('=== Running command')]
    assert 'Creating virtual environment at: ' in build       # `uv venv` without --quiet
    assert '+ mlproj-tiny-a==1.0' in build                     # uv pip install's package list
    assert 'Installed 1 package in ' in build
    assert '\x1b' not in err and '\r' not in err


@pytest.mark.parametrize('manager', ['uv', 'virtualenv'])
def test_quiet_prints_exactly_the_projects_output_around_a_cold_build(tmp_path, offline_index, manager):
    r = piped(['run', '-q', str(project(tmp_path)), '--env-manager', manager], tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (0, (MARK + '\n').encode(), b'')


@pytest.mark.parametrize('terminal', [False, True])
def test_a_failing_install_is_one_error_line_and_exit_68(tmp_path, offline_index, terminal):
    args = ['run', str(project(tmp_path, 'mlproj-tiny-missing==9.9')), '--env-manager', 'uv']
    if terminal:
        code, out = on_terminal(args, tmp_path)
        err = plain(out)
    else:
        r = piped(args, tmp_path)
        code, err = r.returncode, r.stderr.decode()
        assert '\x1b' not in err and '\r' not in err
    assert code == 68, err
    errors = [ln for ln in err.splitlines() if ln.startswith('mlproj: error:')]
    assert len(errors) == 1, err
    assert errors[0].startswith('mlproj: error: installing dependencies failed: ') and 'mlproj-tiny-missing' in errors[0]
    assert MARK not in err
