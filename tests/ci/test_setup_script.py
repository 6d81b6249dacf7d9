"""The action's install step (mlproj/ci/action/setup.sh) outside act: its modes and its errors.

The full install from the action's own checkout is exercised by every act test.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.ci.conftest import BIN, MLPROJ, REPO, clean_environ, read_outputs

SETUP = REPO / 'mlproj' / 'ci' / 'action' / 'setup.sh'


def _setup(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    out = tmp_path / 'output'
    out.touch()
    full = {**clean_environ(), 'RUNNER_TEMP': str(tmp_path / 'runner-temp'), 'GITHUB_OUTPUT': str(out),
            'GITHUB_ACTION_PATH': str(REPO), **env}
    (tmp_path / 'runner-temp').mkdir(exist_ok=True)
    got = subprocess.run(['bash', '--noprofile', '--norc', '-eo', 'pipefail', str(SETUP)], env=full,
                         capture_output=True, text=True, timeout=300)
    return got, read_outputs(out)


def test_installed_mode_uses_the_mlproj_on_path(tmp_path):
    got, out = _setup(tmp_path, MLPROJ_VERSION='installed')
    assert got.returncode == 0, got.stderr
    assert out['mlproj'] == MLPROJ
    state_dir = Path(out['state-dir'])
    assert state_dir.is_dir() and state_dir.parent == tmp_path / 'runner-temp' / 'mlproj-action'
    second = _setup(tmp_path, MLPROJ_VERSION='installed')[1]
    assert second['state-dir'] != out['state-dir']  # a fresh state directory per invocation


def test_installed_mode_without_mlproj_is_an_error(tmp_path):
    got, out = _setup(tmp_path, MLPROJ_VERSION='installed', PATH='/usr/bin:/bin')
    assert got.returncode == 1
    assert "::error title=mlproj::mlproj-version is 'installed' but no mlproj is on PATH" in got.stdout
    assert 'mlproj' not in out


def test_python_too_old_or_missing_is_an_error(tmp_path):
    fake = tmp_path / 'bin'
    fake.mkdir()
    old = fake / 'python3.8'
    old.write_text('#!/bin/sh\nexit 1\n')  # answers the version check like a Python < 3.10
    old.chmod(0o755)
    got, _ = _setup(tmp_path, MLPROJ_PYTHON=str(old), PATH=f'{fake}{os.pathsep}{BIN}{os.pathsep}/usr/bin:/bin')
    assert got.returncode == 1 and 'missing or older than 3.10' in got.stdout
