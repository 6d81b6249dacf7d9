"""Plain helpers of the source tests (tests/source/conftest.py holds their fixtures).

What the fixture repositories serve (``SHOW_PY``, ``MLPROJECT``), the credentials of the private
copies, servers started and stopped by pid (``git daemon``, smart HTTP), checks on checkouts and
`mlproj` / ``source.resolve`` as real subprocesses.
"""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import REPO, free_port, stop_group
from tests.helpers.git import git, git_env, run_git

HTTP_SERVER = REPO / 'tests' / 'source' / 'git_http_server.py'
TOKEN = 's3cr3t-T0KEN-9f8e7d6c'
USER = 'alice'

SHOW_PY = '''\
import json, os, sys
root = os.getcwd()
while root != '/' and not os.path.exists(os.path.join(root, 'VERSION')):
    root = os.path.dirname(root)
info = {
    'version': open(os.path.join(root, 'VERSION')).read().strip(),
    'cwd': os.getcwd(),
    'args': sys.argv[1:],
    'files': sorted(os.listdir('.')),
    'env_has_token': any('TOKEN_PLACEHOLDER' in v for v in os.environ.values()),
    'lib': os.path.exists(os.path.join(root, 'vendor', 'lib', 'lib.txt')),
    'leaf': os.path.exists(os.path.join(root, 'vendor', 'lib', 'leaf', 'leaf.txt')),
}
out = os.environ.get('MLPROJ_TEST_OUT')
if out:
    with open(out, 'a') as f:
        f.write(json.dumps(info) + '\\n')
print(json.dumps(info))
'''.replace('TOKEN_PLACEHOLDER', TOKEN)

MLPROJECT = '''\
name: {name}
entry_points:
  main:
    parameters:
      alpha: {{type: float, default: 0.1}}
    command: "python show.py {{alpha}}"
'''


def wait_port(host: str, port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f'server on {host}:{port} exited with {proc.returncode}')
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f'server on {host}:{port} not ready after {timeout}s')


def stop(proc: subprocess.Popen) -> None:
    """Stop a server started with start_new_session=True (its whole process group)."""
    stop_group(proc)


def tree_digest(root: Path) -> str:
    """Hash of every path, mode, link target and file content under ``root`` (incl. .git)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            h.update(f'{os.path.relpath(p, root)}\0{st.st_mode}\0'.encode())
            if os.path.islink(p):
                h.update(os.readlink(p).encode())
            else:
                with open(p, 'rb') as f:
                    h.update(f.read())
        h.update(f'{os.path.relpath(dirpath, root)}/\0'.encode())
    return h.hexdigest()


def assert_worktree(root: Path, commit: str, *, sparse: str | None = None, origin: str | None = None) -> None:
    """``root`` is a Git working tree at ``commit`` (detached), clean, owning no objects."""
    def g(*args: str) -> str:
        return git(*args, cwd=root)

    assert g('rev-parse', 'HEAD') == commit
    assert g('rev-parse', '--show-toplevel') == str(root.resolve())
    assert run_git('symbolic-ref', '-q', 'HEAD', cwd=root, check=False).returncode == 1  # detached
    assert g('status', '--porcelain', '--untracked-files=all') == ''
    alternates = (root / '.git' / 'objects' / 'info' / 'alternates').read_text().split()
    assert len(alternates) == 1 and Path(alternates[0]).is_dir()
    own = [p for p in (root / '.git' / 'objects').rglob('*') if p.is_file() and 'info' not in p.parts]
    assert own == [], 'the checkout must borrow its objects, not copy them'
    if origin is not None:
        assert g('config', 'remote.origin.url') == origin
    if sparse:
        assert g('config', 'core.sparseCheckout') == 'true'
        assert g('config', 'core.sparseCheckoutCone') == 'true'
        assert sparse in g('sparse-checkout', 'list').splitlines()


@dataclass
class Repos:
    base: Path
    home: Path                 # HOME for git fixtures and subprocesses (has .ssh/known_hosts later)
    srv: Path                  # served bare repositories
    work: Path                 # a user's working clone of proj (recursive, branch feature too)
    plain: Path                # a project directory outside any Git repository
    sha: dict[str, str] = field(default_factory=dict)


def start_daemon(root: Path, home: Path, log_path: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    log = open(log_path, 'ab')
    proc = subprocess.Popen(
        ['git', 'daemon', f'--base-path={root}', '--export-all', '--listen=127.0.0.1', f'--port={port}',
         '--reuseaddr', '--enable=upload-pack', '--verbose', str(root)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=git_env(home))
    log.close()
    wait_port('127.0.0.1', port, proc)
    return proc, port


def start_http(repos: Repos, *, tls: tuple[str, str] | None = None, log: Path | None = None,
               throttle: Path | None = None, port: int | None = None, root: Path | None = None
               ) -> tuple[subprocess.Popen, int]:
    port = port or free_port()
    argv = [sys.executable, str(HTTP_SERVER), '--root', str(root or repos.srv), '--port', str(port),
            '--auth', f'{USER}:{TOKEN}']
    if tls:
        argv += ['--cert', tls[0], '--key', tls[1]]
    if log:
        argv += ['--log', str(log)]
    if throttle:
        argv += ['--throttle-file', str(throttle)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env=git_env(repos.home))
    wait_port('127.0.0.1', port, proc)
    return proc, port


FORMS = ('git', 'http', 'https', 'ssh', 'scp', 'file', 'path', 'worktree')


RESOLVE_PY = ('import sys\nfrom mlproj import source\n'
              's = source.resolve(sys.argv[1], sys.argv[2] or None)\nprint(s.commit)\ns.cleanup()\n')


def resolve_process(uri: str, rev: str | None = None, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`source.resolve(uri, rev)` in a child process (own process group), printing the commit."""
    return subprocess.Popen([sys.executable, '-c', RESOLVE_PY, uri, rev or ''], env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            stdin=subprocess.DEVNULL)
