"""Plain helpers of the environment-manager tests (tests/envs/conftest.py holds their fixtures):
hand-written wheels, projects, the Python version, containers of a Docker engine, a fake conda's calls."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.helpers import write_project as _write_project

BUSYBOX_IMAGE = 'local/mlproj-test-busybox:1'


def _record_hash(data: bytes) -> str:
    return 'sha256=' + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()


def make_wheel(directory: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    module = name.replace('-', '_')
    dist = f'{module}-{version}'
    files = {
        f'{module}/__init__.py': f'VERSION = {version!r}\n'.encode(),
        f'{dist}.dist-info/METADATA': (
            f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n'
            + ''.join(f'Requires-Dist: {r}\n' for r in requires)).encode(),
        f'{dist}.dist-info/WHEEL': b'Wheel-Version: 1.0\nGenerator: mlproj-tests\nRoot-Is-Purelib: true\n'
                                   b'Tag: py3-none-any\n',
    }
    record = ''.join(f'{p},{_record_hash(d)},{len(d)}\n' for p, d in files.items()) + f'{dist}.dist-info/RECORD,,\n'
    files[f'{dist}.dist-info/RECORD'] = record.encode()
    path = directory / f'{dist}-py3-none-any.whl'
    with zipfile.ZipFile(path, 'w') as z:
        for p, d in files.items():
            z.writestr(p, d)
    return path


def write_project(directory: Path, files: dict[str, str]) -> Path:
    """``files`` (relative name -> text) written under ``directory`` (an MLproject is one of them)."""
    return _write_project(directory, None, files)


def py_version() -> str:
    return f'{sys.version_info[0]}.{sys.version_info[1]}'


def containers(host: str, all_: bool = True) -> list[str]:
    argv = ['docker', 'ps', '--format', '{{.Names}}'] + (['-a'] if all_ else [])
    out = subprocess.run(argv, env=dict(os.environ, DOCKER_HOST=host), capture_output=True, text=True)
    return out.stdout.split()


def conda_calls(root: Path) -> list[list[str]]:
    path = root / 'calls.jsonl'
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]
