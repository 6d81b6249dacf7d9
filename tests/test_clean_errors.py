"""Failures that used to be internal errors (exit 71, a traceback) are one-line errors with stable codes.

A tracking server answering 200 with HTML (a real HTTP server on loopback), a read-only cache
directory (a real read-only tmpfs in a private mount namespace), a zip with a bad CRC or an
unsupported compression method (real archives, patched bytes), non-ASCII digits for int/float.
"""
from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
import zipfile
from pathlib import Path

import pytest

from tests.helpers import mlproj_bin, write_project

pytestmark = pytest.mark.slow  # every test drives mlproj as a subprocess

MAIN = 'name: p\nentry_points:\n  main:\n    parameters:\n      n: int\n      x: {type: float, default: 0.5}\n' \
       '    command: "echo {n} {x}"\n'


def mlproj(args: list[str], cwd: Path, env: dict | None = None, prefix: list[str] | None = None
           ) -> subprocess.CompletedProcess:
    full = dict(os.environ, **(env or {}))
    return subprocess.run([*(prefix or []), mlproj_bin(), *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=180, stdin=subprocess.DEVNULL)


def assert_one_line(r: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert r.returncode == code, r.stderr
    assert r.stderr.startswith('mlproj: error: ') and r.stderr.count('\n') == 1, r.stderr
    assert 'Traceback' not in r.stderr and 'internal error' not in r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


@pytest.fixture
def html_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def _page(self) -> None:
            body = b'<!doctype html><html><body>Sign in to continue</body></html>'
            self.send_response(200)
            self.send_header('Content-Type', 'text/html; charset=utf-8')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _page

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()


def test_tracking_server_answering_html_is_a_tracking_error(tmp_path, html_server):
    proj = write_project(tmp_path / 'p', MAIN)
    r = mlproj(['run', str(proj), '-P', 'n=1', '--env-manager', 'local'], tmp_path,
               {'MLFLOW_TRACKING_URI': html_server})
    assert_one_line(r, 70, 'answered with text/html instead of JSON')


def _can_mount() -> bool:
    if shutil.which('unshare') is None:
        return False
    probe = subprocess.run(['unshare', '-m', 'sh', '-c', 'mount -t tmpfs tmpfs /mnt'], capture_output=True)
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(not _can_mount(), reason='needs `unshare -m` and mount (root or user namespaces)')


def _read_only(cache: Path, inner: str) -> list[str]:
    """A prefix running the command with ``cache`` as a read-only tmpfs holding the dirs of ``inner``."""
    script = (f'mount -t tmpfs tmpfs "{cache}" && mkdir -p {inner} && mount -o remount,ro "{cache}" '
              '&& exec "$@"')
    return ['unshare', '-m', 'sh', '-c', script, 'sh']


@needs_mount
def test_read_only_clone_cache_is_a_source_error(tmp_path):
    from tests.helpers.git import git

    home = tmp_path / 'home'
    home.mkdir()
    proj = write_project(tmp_path / 'repo', MAIN)
    git('init', '-q', cwd=proj, home=home)
    git('add', '-A', cwd=proj, home=home)
    git('commit', '-qm', 'c', cwd=proj, home=home)
    cache = tmp_path / 'cache'
    cache.mkdir()
    env = {'MLPROJ_CACHE_DIR': str(cache)}
    r = mlproj(['run', '--dry-run', str(proj), '-v', 'HEAD', '-P', 'n=1'], tmp_path, env,
               _read_only(cache, f'"{cache}/checkouts"'))
    assert_one_line(r, 67, 'cannot write the clone cache: Read-only file system', 'MLPROJ_CACHE_DIR')
    r = mlproj(['run', '--dry-run', str(proj), '-v', 'HEAD', '-P', 'n=1'], tmp_path, env, _read_only(cache, 'true'))
    assert_one_line(r, 67, 'cannot write the clone cache: Read-only file system')


@needs_mount
def test_read_only_env_store_is_an_env_error(tmp_path):
    import sys

    version = '.'.join(map(str, sys.version_info[:2]))
    proj = write_project(tmp_path / 'p', MAIN, {'python_env.yaml': f'python: "{version}"\n'})
    cache = tmp_path / 'cache'
    cache.mkdir()
    env = {'MLPROJ_CACHE_DIR': str(cache)}
    for inner in ('true', f'"{cache}/envs/.locks"'):
        r = mlproj(['env', 'build', str(proj)], tmp_path, env, _read_only(cache, inner))
        assert r.returncode == 68, r.stderr
        assert 'Read-only file system' in r.stderr and r.stderr.count('\n') == 1, r.stderr
        assert 'Traceback' not in r.stderr


def _zip(path: Path, method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, 'w', compression=method) as zf:
        zf.writestr('MLproject', MAIN)
        zf.writestr('train.py', 'print("hello")\n' * 200)
    return path


def test_zip_with_a_bad_crc_is_a_source_error(tmp_path):
    archive = _zip(tmp_path / 'p.zip', zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    at = data.index(b'print("hello")')
    data[at] ^= 0x20  # stored: the byte changes, the recorded CRC does not
    archive.write_bytes(bytes(data))
    r = mlproj(['run', '--dry-run', str(archive), '-P', 'n=1'], tmp_path)
    assert_one_line(r, 67, "zip member 'train.py' is damaged", 'Bad CRC-32')


def test_zip_with_an_unsupported_compression_method_is_a_source_error(tmp_path):
    archive = _zip(tmp_path / 'p.zip')
    data = bytearray(archive.read_bytes())
    # compression method 99 (WinZip AES) in the local header and the central directory entry of train.py
    local = data.index(b'PK\x03\x04', data.index(b'PK\x03\x04') + 4)
    data[local + 8:local + 10] = (99).to_bytes(2, 'little')
    central = data.index(b'PK\x01\x02', data.index(b'PK\x01\x02') + 4)
    data[central + 10:central + 12] = (99).to_bytes(2, 'little')
    archive.write_bytes(bytes(data))
    r = mlproj(['run', '--dry-run', str(archive), '-P', 'n=1'], tmp_path)
    assert_one_line(r, 67, "zip member 'train.py' uses a compression method mlproj cannot read")


@pytest.mark.parametrize('param,value', [('n', '\u0661\u0662\u0663'), ('n', '\uff11\uff12'), ('x', '\uff10.5'),
                                         ('x', '1e\u0663')])
def test_non_ascii_digits_are_refused(tmp_path, param, value):
    proj = write_project(tmp_path / 'p', MAIN)
    args = ['run', '--dry-run', str(proj), '-P', f'{param}={value}'] + ([] if param == 'n' else ['-P', 'n=1'])
    r = mlproj(args, tmp_path)
    assert_one_line(r, 66, f'parameter {param!r} expects')


def test_ascii_numbers_inf_and_nan_are_accepted(tmp_path):
    proj = write_project(tmp_path / 'p', MAIN)
    for x in ('1e-3', 'inf', '-Infinity', 'nan', '.5'):
        r = mlproj(['run', '--dry-run', str(proj), '-P', 'n=+12', '-P', f'x={x}'], tmp_path)
        assert r.returncode == 0, r.stderr
