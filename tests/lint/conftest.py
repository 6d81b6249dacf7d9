"""Helpers for the lint tests: fixture discovery, the CLI in-process and as a real subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / 'fixtures'
REPO = HERE.parent.parent


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


def run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None, stdin: bytes | None = None) -> CliResult:
    """`python -m mlproj ARGS` as a real process (exit codes, stdout/stderr exactly as a user sees them)."""
    full_env = {k: v for k, v in os.environ.items() if k not in ('GITHUB_ACTIONS', 'NO_COLOR')}
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, '-m', 'mlproj', *args], cwd=cwd, env=full_env, input=stdin,
                          capture_output=True, timeout=120)
    return CliResult(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def fixture_dirs(kind: str) -> list[Path]:
    return sorted(FIXTURES.glob(f'MLP*/{kind}'))


@pytest.fixture
def git_env(tmp_path, monkeypatch):
    """An isolated git identity and config for commits in temporary repositories."""
    home = tmp_path / 'home'
    home.mkdir()
    values = {
        'HOME': str(home), 'GIT_CONFIG_NOSYSTEM': '1', 'GIT_AUTHOR_NAME': 't', 'GIT_AUTHOR_EMAIL': 't@example.com',
        'GIT_COMMITTER_NAME': 't', 'GIT_COMMITTER_EMAIL': 't@example.com', 'XDG_CONFIG_HOME': str(home / '.config'),
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values
