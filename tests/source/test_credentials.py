"""Credentials against real servers: tokens, credential helpers, SSH keys/agent, host keys, TLS trust.

Most cases run ``mlproj show`` as a subprocess with its own HOME, because libgit2 reads HOME,
known_hosts and the TLS trust store once per process.  Every output is checked for the token.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from mlproj import source
from mlproj.errors import SourceError
from tests.helpers import run_mlproj
from tests.helpers.git import git
from tests.helpers.source import TOKEN, USER, stop


def _files_containing(root: Path, needle: str) -> list[str]:
    hits = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if needle in p:
                hits.append(p)
            if name in filenames and not os.path.islink(p):
                with open(p, 'rb') as f:
                    if needle.encode() in f.read():
                        hits.append(p)
    return hits


def _show(uri: str, rev: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    args = ['show', uri, '--json'] + (['-v', rev] if rev else [])
    return run_mlproj(*args, env=env, timeout=60)


def _assert_no_token(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text


@pytest.fixture
def https_url(https_server, tls_cert, monkeypatch):
    monkeypatch.setenv('SSL_CERT_FILE', tls_cert[0])
    return f'https://127.0.0.1:{https_server}/private/proj.git'


def test_token_in_the_url_is_used_and_never_kept(repos, https_url, cache_dir, monkeypatch):
    monkeypatch.setenv('MLPROJ_SPARSE_CHECKOUT', '0')  # the whole tree: vendor/lib is outside the #sub/folder cone
    uri = https_url.replace('https://', f'https://{USER}:{TOKEN}@') + '#sub/folder'
    src = source.resolve(uri, 'main')
    try:
        assert src.commit == repos.sha['C']
        assert (src.root / 'vendor/lib/leaf/leaf.txt').exists()  # submodules on the same host, same credentials
        assert TOKEN not in json.dumps(src.tags()) and TOKEN not in repr(src)
        assert src.tags()['mlflow.source.name'] == https_url + '#sub/folder'
    finally:
        src.cleanup()
    assert _files_containing(cache_dir, TOKEN) == []
    # the second run updates the same mirror, whose config never held the token
    source.resolve(uri, 'feature').cleanup()
    assert _files_containing(cache_dir, TOKEN) == []


def test_wrong_token_fails_with_a_redacted_one_line_error(repos, https_url, cache_dir):
    bad = 'wrong-' + TOKEN[::-1]
    with pytest.raises(SourceError) as e:
        source.resolve(https_url.replace('https://', f'https://{USER}:{bad}@'))
    message = str(e.value)
    assert message.startswith('authentication to 127.0.0.1:') and 'credentials in the URI' in message
    assert bad not in message and '\n' not in message


def test_mlproj_git_token_env(repos, http_server, cache_dir, monkeypatch):
    monkeypatch.setenv('MLPROJ_GIT_TOKEN', TOKEN)
    monkeypatch.setenv('MLPROJ_GIT_USERNAME', USER)
    src = source.resolve(f'http://127.0.0.1:{http_server}/private/proj.git', 'v1.0')
    try:
        assert src.commit == repos.sha['B']
    finally:
        src.cleanup()


def test_github_token_goes_to_github_hosts_only(repos, http_server, cache_dir, monkeypatch):
    url = f'http://{USER}@127.0.0.1:{http_server}/private/proj.git'
    monkeypatch.setenv('GITHUB_TOKEN', TOKEN)
    with pytest.raises(SourceError) as e:
        source.resolve(url)
    assert 'GITHUB_TOKEN' not in str(e.value) and TOKEN not in str(e.value)
    monkeypatch.setenv('GITHUB_SERVER_URL', f'http://127.0.0.1:{http_server}')
    source.resolve(url).cleanup()


def test_no_credentials_fails_fast_without_prompting(repos, http_server, tmp_path):
    url = f'http://127.0.0.1:{http_server}/private/proj.git'
    r = _show(url, env={'MLPROJ_CACHE_DIR': str(tmp_path / 'c')})
    assert r.returncode == 67
    assert r.stderr.strip().splitlines() == [
        f'mlproj: error: authentication to 127.0.0.1:{http_server} failed (tried: nothing); '
        f'set MLFLOW_GIT_PASSWORD (or MLPROJ_GIT_TOKEN) or configure a git credential helper ({url})']


@pytest.mark.parametrize('kind', ['store', 'shell'])
def test_git_credential_helper(repos, http_server, tmp_path, kind):
    home = Path(os.environ['HOME'])
    if kind == 'store':
        creds = tmp_path / 'creds'
        creds.write_text(f'http://{USER}:{TOKEN}@127.0.0.1:{http_server}\n')
        helper = f'store --file={creds}'
    else:
        helper = f'!f() {{ test "$1" = get && echo username={USER} && echo password={TOKEN}; }}; f'
    git('config', '--file', str(home / '.gitconfig'), 'credential.helper', helper)
    r = _show(f'http://127.0.0.1:{http_server}/private/proj.git#sub/folder', 'feature',
              env={'MLPROJ_CACHE_DIR': str(tmp_path / 'c')})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)['name'] == 'sub-project'
    _assert_no_token(r.stdout, r.stderr)
    assert _files_containing(tmp_path / 'c', TOKEN) == []


def test_untrusted_tls_certificate(repos, https_server, tls_cert, tmp_path):
    url = f'https://127.0.0.1:{https_server}/proj.git'
    env = {'MLPROJ_CACHE_DIR': str(tmp_path / 'c')}
    r = _show(url, env=env)
    assert r.returncode == 67
    assert 'TLS certificate of 127.0.0.1 is not trusted' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert _show(url, env={**env, 'GIT_SSL_CAINFO': tls_cert[0]}).returncode == 0
    assert _show(url, env={**env, 'GIT_SSL_NO_VERIFY': 'true'}).returncode == 0


@pytest.fixture
def ssh_env(sshd, repos, tmp_path):
    home = Path(os.environ['HOME'])
    (home / '.ssh').mkdir(exist_ok=True)
    url = f'ssh://root@127.0.0.1:{sshd.port}{repos.srv}/proj.git'
    return url, home, {'MLPROJ_CACHE_DIR': str(tmp_path / 'c')}


def test_ssh_host_key_checking(sshd, ssh_env):
    url, home, env = ssh_env
    env['MLPROJ_SSH_KEY'] = sshd.key
    r = _show(url, env=env)
    assert r.returncode == 67
    assert 'SSH host key of 127.0.0.1 is not in ~/.ssh/known_hosts' in r.stderr
    assert _show(url, env={**env, 'MLPROJ_SSH_STRICT_HOST_KEY_CHECKING': 'no'}).returncode == 0
    (home / '.ssh' / 'known_hosts').write_text(sshd.known_hosts_line)
    r = _show(url, 'v1.0', env=env)
    assert r.returncode == 0, r.stderr


def test_ssh_keys_agent_and_default_key(sshd, ssh_env, tmp_path):
    url, home, env = ssh_env
    (home / '.ssh' / 'known_hosts').write_text(sshd.known_hosts_line)
    # no key anywhere
    r = _show(url, env=env)
    assert r.returncode == 67 and 'failed (tried: nothing); set MLPROJ_SSH_KEY' in r.stderr
    # a key the server does not know
    stranger = tmp_path / 'stranger'
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(stranger)], check=True)
    r = _show(url, env={**env, 'MLPROJ_SSH_KEY': str(stranger)})
    assert r.returncode == 67 and '(tried: MLPROJ_SSH_KEY)' in r.stderr
    # ~/.ssh/id_ed25519
    shutil.copy(sshd.key, home / '.ssh' / 'id_ed25519')
    os.chmod(home / '.ssh' / 'id_ed25519', 0o600)
    r = _show(url, env=env)
    assert r.returncode == 0, r.stderr
    (home / '.ssh' / 'id_ed25519').unlink()
    # ssh-agent
    sock = tmp_path / 'agent.sock'
    agent = subprocess.Popen(['ssh-agent', '-D', '-a', str(sock)], stdout=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        subprocess.run(['ssh-add', '-q', sshd.key], env={**os.environ, 'SSH_AUTH_SOCK': str(sock)}, check=True,
                       capture_output=True)
        r = _show(url, 'feature', env={**env, 'SSH_AUTH_SOCK': str(sock)})
        assert r.returncode == 0, r.stderr
    finally:
        stop(agent)
