"""Plain helpers of the lint tests (tests/lint/conftest.py holds their fixtures): fixture discovery
and the CLI as a real subprocess."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import NamedTuple

from tests.helpers import REPO, mlproj_argv

FIXTURES = REPO / 'tests' / 'lint' / 'fixtures'


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


def run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None, stdin: bytes | None = None) -> CliResult:
    """`python -m mlproj ARGS` as a real process (exit codes, stdout/stderr exactly as a user sees them)."""
    full_env = {k: v for k, v in os.environ.items() if k not in ('GITHUB_ACTIONS', 'NO_COLOR')}
    full_env.update(env or {})
    proc = subprocess.run(mlproj_argv(*args), cwd=cwd, env=full_env, input=stdin,
                          capture_output=True, timeout=120)
    return CliResult(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def fixture_dirs(kind: str) -> list[Path]:
    return sorted(FIXTURES.glob(f'MLP*/{kind}'))
