"""Fixture repositories and real Git servers on loopback for the source tests.

Servers (each started once per session, stopped by pid / process group):
``git daemon`` (git://), smart HTTP and HTTPS through ``git http-backend`` (self-signed cert,
basic auth on ``/private/``), and ``sshd`` with a generated key on 127.0.0.1:<high port> plus
127.0.0.2:22 for scp-like ``user@host:path`` URIs (which cannot carry a port).

Repository ``proj`` (served bare from ``srv/``), with MLproject at the root and in sub/folder::

    A -- B (tag v1.0, annotated) -- C (main: adds submodule vendor/lib -> lib -> leaf)
          \\-- D (branch feature)
    lightweight tag ``light`` at A; ``evil -> /etc`` and ``evil2 -> ../..`` symlinks at C
"""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import free_port, stop_group

HERE = Path(__file__).resolve().parent
HTTP_SERVER = HERE / 'git_http_server.py'
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


def git_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith('GIT_')}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM='1', GIT_AUTHOR_NAME='t', GIT_AUTHOR_EMAIL='t@example.com',
               GIT_COMMITTER_NAME='t', GIT_COMMITTER_EMAIL='t@example.com', GIT_TERMINAL_PROMPT='0')
    return env


def git(*args: str, cwd: Path | None = None, home: Path) -> str:
    proc = subprocess.run(['git', '-c', 'protocol.file.allow=always', '-c', 'init.defaultBranch=main', *args],
                          cwd=cwd, env=git_env(home), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f'git {" ".join(args)} failed: {proc.stderr}')
    return proc.stdout.strip()


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
    env = {**os.environ, 'GIT_CONFIG_NOSYSTEM': '1', 'GIT_CONFIG_GLOBAL': '/dev/null'}

    def g(*args: str) -> str:
        proc = subprocess.run(['git', *args], cwd=root, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f'git {args}: {proc.stderr}'
        return proc.stdout.strip()

    assert g('rev-parse', 'HEAD') == commit
    assert g('rev-parse', '--show-toplevel') == str(root.resolve())
    assert subprocess.run(['git', 'symbolic-ref', '-q', 'HEAD'], cwd=root, env=env).returncode == 1  # detached
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


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture(scope='session')
def repos(tmp_path_factory) -> Iterator[Repos]:
    base = tmp_path_factory.mktemp('gitsrc')
    home = base / 'home'
    home.mkdir()
    srv = base / 'srv'
    srv.mkdir()
    build = base / 'build'
    r = Repos(base, home, srv, base / 'work', base / 'plain')

    def bare(name: str) -> Path:
        path = srv / name
        git('init', '-q', '--bare', str(path), home=home)
        git('config', 'uploadpack.allowReachableSHA1InWant', 'true', cwd=path, home=home)
        git('config', 'uploadpack.allowAnySHA1InWant', 'true', cwd=path, home=home)
        return path

    # leaf <- lib (submodule leaf) ; proj gets lib as vendor/lib at C
    for name, files in (('leaf', {'leaf.txt': 'leaf\n'}), ('lib', {'lib.txt': 'lib\n'})):
        w = build / name
        git('init', '-q', str(w), home=home)
        for fn, text in files.items():
            _write(w / fn, text)
        bare(f'{name}.git')
        git('remote', 'add', 'origin', str(srv / f'{name}.git'), cwd=w, home=home)
        if name == 'lib':
            git('submodule', 'add', '-q', '../leaf.git', 'leaf', cwd=w, home=home)
        git('add', '-A', cwd=w, home=home)
        git('commit', '-qm', f'{name} 1', cwd=w, home=home)
        git('push', '-q', 'origin', 'main', cwd=w, home=home)

    w = build / 'proj'
    git('init', '-q', str(w), home=home)
    bare('proj.git')
    git('remote', 'add', 'origin', str(srv / 'proj.git'), cwd=w, home=home)
    for d, name in (('', 'root-project'), ('sub/folder', 'sub-project')):
        _write(w / d / 'MLproject', MLPROJECT.format(name=name))
        _write(w / d / 'show.py', SHOW_PY)
    exe = w / 'run.sh'
    _write(exe, '#!/bin/sh\necho run\n')
    exe.chmod(0o755)
    os.symlink('show.py', w / 'link.py')

    def commit(label: str) -> str:
        _write(w / 'VERSION', label + '\n')
        git('add', '-A', cwd=w, home=home)
        git('commit', '-qm', label, cwd=w, home=home)
        return git('rev-parse', 'HEAD', cwd=w, home=home)

    r.sha['A'] = commit('A')
    git('tag', 'light', cwd=w, home=home)
    r.sha['B'] = commit('B')
    git('tag', '-a', 'v1.0', '-m', 'release 1.0', cwd=w, home=home)
    git('checkout', '-q', '-b', 'feature', cwd=w, home=home)
    r.sha['D'] = commit('D')
    git('checkout', '-q', 'main', cwd=w, home=home)
    git('submodule', 'add', '-q', '../lib.git', 'vendor/lib', cwd=w, home=home)
    git('submodule', 'update', '-q', '--init', '--recursive', cwd=w, home=home)
    os.symlink('/etc', w / 'evil')
    os.symlink('../..', w / 'evil2')
    r.sha['C'] = commit('C')
    git('push', '-q', 'origin', 'main', 'feature', '--tags', cwd=w, home=home)
    git('symbolic-ref', 'HEAD', 'refs/heads/main', cwd=srv / 'proj.git', home=home)

    # a private copy (basic auth over http(s)) and a user's working clone
    (srv / 'private').mkdir()
    for name in ('proj', 'lib', 'leaf'):
        git('clone', '-q', '--bare', str(srv / f'{name}.git'), str(srv / 'private' / f'{name}.git'), home=home)
    git('clone', '-q', '--recurse-submodules', str(srv / 'proj.git'), str(r.work), home=home)
    git('branch', '-q', 'feature', 'origin/feature', cwd=r.work, home=home)
    _write(r.plain / 'MLproject', MLPROJECT.format(name='plain'))
    _write(r.plain / 'show.py', SHOW_PY)
    _write(r.plain / 'VERSION', 'plain\n')
    before = tree_digest(r.srv), tree_digest(r.work)
    yield r
    # whatever the tests ran (file://, plain paths, -v exports, in-place runs), the served
    # repositories and the user's working clone are byte-identical afterwards
    assert (tree_digest(r.srv), tree_digest(r.work)) == before, 'a source repository was modified'


# ------------------------------------------------------------------------------------------
# servers


@dataclass
class Servers:
    daemon: int = 0
    http: int = 0
    https: int = 0
    ssh: int = 0
    cert: str = ''
    ssh_key: str = ''
    known_hosts: str = ''
    http_log: str = ''


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


@pytest.fixture(scope='session')
def git_daemon(repos):
    proc, port = start_daemon(repos.srv, repos.home, repos.base / 'daemon.log')
    try:
        yield port
    finally:
        stop(proc)


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


@pytest.fixture(scope='session')
def http_server(repos):
    proc, port = start_http(repos, log=repos.base / 'http.log')
    try:
        yield port
    finally:
        stop(proc)


@pytest.fixture(scope='session')
def tls_cert(repos) -> tuple[str, str]:
    crt, key = repos.base / 'tls.crt', repos.base / 'tls.key'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
                    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', str(key), '-out', str(crt)],
                   check=True, capture_output=True)
    return str(crt), str(key)


@pytest.fixture(scope='session')
def https_server(repos, tls_cert):
    proc, port = start_http(repos, tls=tls_cert)
    try:
        yield port
    finally:
        stop(proc)


@dataclass
class SSH:
    port: int
    key: str
    known_hosts_line: str       # host key lines for 127.0.0.1:port and 127.0.0.2


@pytest.fixture(scope='session')
def sshd(repos):
    exe = shutil.which('sshd') or '/usr/sbin/sshd'
    assert os.path.exists(exe), 'sshd missing: apt-get install openssh-server'
    d = repos.base / 'ssh'
    d.mkdir()
    for name in ('hostkey', 'clientkey'):
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(d / name)], check=True)
    shutil.copy(d / 'clientkey.pub', d / 'authorized_keys')
    os.chmod(d / 'authorized_keys', 0o644)
    os.makedirs('/run/sshd', exist_ok=True)
    port = free_port()
    config = d / 'sshd_config'
    config.write_text(f'''\
ListenAddress 127.0.0.1:{port}
ListenAddress 127.0.0.2:22
HostKey {d}/hostkey
AuthorizedKeysFile {d}/authorized_keys
PidFile {d}/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
''')
    subprocess.run([exe, '-t', '-f', str(config)], check=True)
    log = open(d / 'sshd.log', 'wb')
    proc = subprocess.Popen([exe, '-D', '-e', '-f', str(config)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_port('127.0.0.1', port, proc)
        wait_port('127.0.0.2', 22, proc)
        hostkey = (d / 'hostkey.pub').read_text().split()
        known = f'[127.0.0.1]:{port} {hostkey[0]} {hostkey[1]}\n127.0.0.2 {hostkey[0]} {hostkey[1]}\n'
        yield SSH(port, str(d / 'clientkey'), known)
    finally:
        stop(proc)
        log.close()


# ------------------------------------------------------------------------------------------
# per-test isolation


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / 'cache'
    monkeypatch.setenv('MLPROJ_CACHE_DIR', str(d))
    return d


@pytest.fixture(autouse=True)
def _source_env(monkeypatch, tmp_path):
    """No credentials or host trust leak in from the machine; HOME is an empty temp dir."""
    for name in ('MLPROJ_GIT_TOKEN', 'MLPROJ_GIT_USERNAME', 'GITHUB_TOKEN', 'MLPROJ_SSH_KEY', 'SSH_AUTH_SOCK',
                 'MLFLOW_GIT_USERNAME', 'MLFLOW_GIT_PASSWORD',
                 'MLPROJ_SSH_STRICT_HOST_KEY_CHECKING', 'GIT_SSL_NO_VERIFY', 'GIT_SSL_CAINFO', 'SSL_CERT_FILE'):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / 'home'
    home.mkdir(exist_ok=True)
    monkeypatch.setenv('HOME', str(home))


FORMS = ('git', 'http', 'https', 'ssh', 'scp', 'file', 'path', 'worktree')


@pytest.fixture
def url_for(repos, request, monkeypatch):
    """``url_for(form, repo='proj.git')``: start the server the form needs and return its URI."""
    def make(form: str, repo: str = 'proj.git') -> str:
        if form == 'git':
            return f'git://127.0.0.1:{request.getfixturevalue("git_daemon")}/{repo}'
        if form == 'http':
            return f'http://127.0.0.1:{request.getfixturevalue("http_server")}/{repo}'
        if form == 'https':
            port = request.getfixturevalue('https_server')
            monkeypatch.setenv('SSL_CERT_FILE', request.getfixturevalue('tls_cert')[0])
            return f'https://127.0.0.1:{port}/{repo}'
        if form in ('ssh', 'scp'):
            ssh = request.getfixturevalue('sshd')
            monkeypatch.setenv('MLPROJ_SSH_KEY', ssh.key)
            trust_ssh_host(ssh, monkeypatch)
            if form == 'ssh':
                return f'ssh://root@127.0.0.1:{ssh.port}{repos.srv}/{repo}'
            return f'root@127.0.0.2:{repos.srv}/{repo}'
        if form == 'file':
            return f'file://{repos.srv}/{repo}'
        if form == 'path':
            return str(repos.srv / repo)
        if form == 'worktree':
            return str(repos.work)
        raise ValueError(form)
    return make


def trust_ssh_host(ssh: SSH, monkeypatch) -> Path:
    """Write known_hosts under a temp home and point libgit2 (process-global) at it."""
    import pygit2

    home = Path(os.environ['HOME'])
    (home / '.ssh').mkdir(exist_ok=True)
    (home / '.ssh' / 'known_hosts').write_text(ssh.known_hosts_line)
    monkeypatch.setattr(pygit2.settings, 'homedir', str(home))
    return home


MLPROJ = str(Path(sys.executable).with_name('mlproj'))
RESOLVE_PY = ('import sys\nfrom mlproj import source\n'
              's = source.resolve(sys.argv[1], sys.argv[2] or None)\nprint(s.commit)\ns.cleanup()\n')


def run_mlproj(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    """`mlproj ARGS` as a real subprocess (the current os.environ plus ``env``)."""
    return subprocess.run([MLPROJ, *args], env={**os.environ, **(env or {})}, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def resolve_process(uri: str, rev: str | None = None, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`source.resolve(uri, rev)` in a child process (own process group), printing the commit."""
    return subprocess.Popen([sys.executable, '-c', RESOLVE_PY, uri, rev or ''], env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            stdin=subprocess.DEVNULL)
