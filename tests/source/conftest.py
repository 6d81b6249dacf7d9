"""Fixture repositories and real Git servers on loopback for the source tests (their plain helpers:
``tests.helpers.source``).

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

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import free_port
from tests.helpers.git import git
from tests.helpers.source import MLPROJECT, SHOW_PY, Repos, start_daemon, start_http, stop, tree_digest, wait_port


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


@pytest.fixture(scope='session')
def git_daemon(repos):
    proc, port = start_daemon(repos.srv, repos.home, repos.base / 'daemon.log')
    try:
        yield port
    finally:
        stop(proc)


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


