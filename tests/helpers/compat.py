"""Plain helpers of the compatibility suite (tests/compat/conftest.py holds its fixtures)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import run_mlproj, write_project


def write(directory: Path, files: dict[str, str]) -> Path:
    """``files`` (relative name -> text) written under ``directory``."""
    return write_project(directory, None, files)


def mlproj(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180
           ) -> subprocess.CompletedProcess:
    """`mlproj ARGS` as a real subprocess: exit codes and stderr exactly as a user sees them."""
    # `python` in project commands (`--env-manager local`) is this interpreter, which has mlflow
    path = f'{Path(sys.executable).parent}{os.pathsep}{os.environ.get("PATH", os.defpath)}'
    return run_mlproj(*args, cwd=cwd, env={'PATH': path, **(env or {})}, timeout=timeout)


def runs(store_uri: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store_uri)
    out = []
    for exp in client.search_experiments():
        out += client.search_runs([exp.experiment_id])
    return out
