"""Credentials and server verification for libgit2, without ever prompting.

HTTPS/HTTP, tried in order, each once:

1. MLflow's documented pair: ``--git-username``/``--git-password`` of ``mlproj run`` (set for one
   resolution with ``given_credential``), then ``MLFLOW_GIT_USERNAME``/``MLFLOW_GIT_PASSWORD``
   (user name defaults to the URL's user, else ``x-access-token``);
2. ``user:password@`` from the URI itself (never stored: the mirror keeps the stripped URL);
3. ``MLPROJ_GIT_TOKEN`` (user name ``MLPROJ_GIT_USERNAME``, the URL's user, or ``x-access-token``);
4. ``GITHUB_TOKEN`` for github.com (or the host of ``GITHUB_SERVER_URL``) only;
5. the user's Git credential helpers (``credential.helper``), run with no terminal.

SSH: ``MLPROJ_SSH_KEY`` (+ ``MLPROJ_SSH_KEY_PASSPHRASE``), then ssh-agent (``SSH_AUTH_SOCK``),
then ``~/.ssh/id_ed25519``, ``id_ecdsa``, ``id_rsa``.  Host keys are checked against
``~/.ssh/known_hosts`` by libgit2; ``MLPROJ_SSH_STRICT_HOST_KEY_CHECKING=no`` opts out.

TLS certificates are verified (``SSL_CERT_FILE``/``SSL_CERT_DIR``/``GIT_SSL_CAINFO`` add trust);
``GIT_SSL_NO_VERIFY=true`` opts out.  When nothing is left to try, a one-line ``SourceError``
says what was tried; a secret never appears in it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlproj.errors import SourceError
from mlproj.settings import env_value
from mlproj.source.uri import ParsedURI

HELPER_TIMEOUT = 30.0
_TRUE = ('1', 'true', 'yes', 'on')
# (username or None, password) given on the command line, for the resolution in progress
_GIVEN: ContextVar[tuple[str | None, str] | None] = ContextVar('mlproj_git_credential', default=None)


@contextmanager
def given_credential(username: str | None, password: str | None) -> Iterator[None]:
    """Make ``--git-username``/``--git-password`` the first HTTPS credential tried inside the block."""
    token = _GIVEN.set((username or None, password) if password else None)
    try:
        yield
    finally:
        _GIVEN.reset(token)


def _mlflow_pairs(url_user: str | None) -> list[tuple[str, str, str]]:
    """(label, user, password) of MLflow's documented credential: the options, then the variables."""
    out = []
    given = _GIVEN.get()
    if given is not None:
        out.append(('--git-password', given[0] or os.environ.get('MLFLOW_GIT_USERNAME') or url_user
                    or 'x-access-token', given[1]))
    password = os.environ.get('MLFLOW_GIT_PASSWORD')
    if password:
        pair = ('MLFLOW_GIT_PASSWORD', os.environ.get('MLFLOW_GIT_USERNAME') or url_user or 'x-access-token',
                password)
        if not out or out[0][1:] != pair[1:]:
            out.append(pair)
    return out


class Secrets:
    """Every secret seen during one resolution, so errors can be redacted."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        for name in ('MLPROJ_GIT_TOKEN', 'GITHUB_TOKEN', 'MLPROJ_SSH_KEY_PASSPHRASE', 'MLFLOW_GIT_PASSWORD'):
            value = os.environ.get(name)
            if value:
                self.values.add(value)
        given = _GIVEN.get()
        if given is not None:
            self.values.add(given[1])

    def add(self, value: str | None) -> None:
        if value:
            self.values.add(value)


def _host_only(host: str) -> str:
    host = host.lower()
    if host.startswith('['):
        return host.split(']')[0] + ']'
    return host.rsplit(':', 1)[0] if host.count(':') == 1 else host


def _url_host(url: str | None) -> str:
    """Host (with port) of an http(s)/ssh URL or scp-like address; '' when it cannot be told."""
    if not url:
        return ''
    if '://' in url:
        netloc = urlsplit(url).netloc
        return netloc.rpartition('@')[2]
    head = url.split(':', 1)[0]
    return head.rpartition('@')[2] if ':' in url else ''


def _github_hosts() -> set[str]:
    hosts = {'github.com'}
    server = os.environ.get('GITHUB_SERVER_URL')
    if server:
        netloc = urlsplit(server).netloc
        if netloc:
            hosts.add(_host_only(netloc.rpartition('@')[2]))
    return hosts


def make_callbacks(parsed: ParsedURI, secrets: Secrets, config: Any = None, progress: Any = None) -> Any:
    """A ``pygit2.RemoteCallbacks`` for ``parsed`` (``config``: a pygit2 Config for credential helpers;
    ``progress``: a ``FetchProgress`` shown while objects arrive)."""
    import pygit2

    class Callbacks(pygit2.RemoteCallbacks):
        def __init__(self) -> None:
            super().__init__()
            self._candidates: list[tuple[str, Any]] | None = None
            self._tried: list[str] = []

        def transfer_progress(self, stats: Any) -> None:
            if progress is not None:
                progress.update(stats.received_objects, stats.total_objects, stats.received_bytes)

        # -- credentials ------------------------------------------------------------
        def credentials(self, url: str, username_from_url: str | None, allowed_types: Any) -> Any:
            ct = pygit2.enums.CredentialType
            asked = _url_host(url)
            if asked and _host_only(asked) != _host_only(parsed.host):
                raise SourceError(f'{parsed.host} redirected to {asked}; refusing to send credentials to another '
                                  'host', parsed.display)
            if allowed_types & ct.USERNAME:
                return pygit2.Username(username_from_url or parsed.username or _default_ssh_user())
            if self._candidates is None:
                self._candidates = _candidates(parsed, username_from_url, allowed_types, secrets, config)
            while self._candidates:
                label, cred = self._candidates.pop(0)
                if isinstance(cred, _LazyHelper):  # helpers run only when their turn comes
                    cred = cred.resolve()
                if cred is None:
                    continue
                self._tried.append(label)
                return cred
            raise _auth_error(parsed, self._tried)

        # -- server identity --------------------------------------------------------
        def certificate_check(self, certificate: Any, valid: bool, host: bytes | str) -> bool:
            if valid:
                return True
            name = host.decode('utf-8', 'replace') if isinstance(host, bytes) else str(host)
            if parsed.scheme == 'ssh':
                if not env_value('MLPROJ_SSH_STRICT_HOST_KEY_CHECKING'):
                    return True
                raise SourceError(f'SSH host key of {name} is not in ~/.ssh/known_hosts; add it (ssh-keyscan) or '
                                  'set MLPROJ_SSH_STRICT_HOST_KEY_CHECKING=no', parsed.display)
            if os.environ.get('GIT_SSL_NO_VERIFY', '').lower() in _TRUE:
                return True
            raise SourceError(f'TLS certificate of {name} is not trusted; point SSL_CERT_FILE or GIT_SSL_CAINFO '
                              'at its CA bundle, or set GIT_SSL_NO_VERIFY=true', parsed.display)

    return Callbacks()


class FetchProgress:
    """``fetching <repo>: 1234/5678 objects, 12.3 MiB, 4.5 MiB/s`` on stderr while a fetch runs.

    On a terminal one line is rewritten in place (``\\r``, at most 5 times a second); elsewhere (CI
    logs, files) a plain line is printed at most every 10 s and once at the end, so a log shows that
    a large clone is alive without being drowned.  Small fetches (done within 1 s) print nothing.
    """

    def __init__(self, label: str, stream: Any = None, *, tty: bool | None = None) -> None:
        import sys
        import time

        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            try:
                tty = bool(self.stream.isatty())
            except (AttributeError, ValueError):
                tty = False
        self.tty = tty
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False
        self.state = (0, 0, 0)

    def _text(self, now: float) -> str:
        got, total, size = self.state
        rate = size / max(now - self.start, 1e-3) / 1024 ** 2
        return f'mlproj: fetching {self.label}: {got}/{total} objects, {size / 1024 ** 2:.1f} MiB, {rate:.1f} MiB/s'

    def update(self, received: int, total: int, size: int) -> None:
        import time

        self.state = (received, total, size)
        now = time.monotonic()
        if now - self.start < 1.0 or now - self.last < (0.2 if self.tty else 10.0):
            return
        self.last = now
        self.shown = True
        try:
            if self.tty:
                self.stream.write('\r' + self._text(now) + '\x1b[K')
            else:
                self.stream.write(self._text(now) + '\n')
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def done(self) -> None:
        import time

        if not self.shown:
            return
        try:
            self.stream.write(('\r' if self.tty else '') + self._text(time.monotonic()) + (' done\x1b[K\n' if self.tty
                                                                                          else ' done\n'))
            self.stream.flush()
        except (OSError, ValueError):
            pass


def _default_ssh_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return 'git'


def _auth_error(parsed: ParsedURI, tried: list[str]) -> SourceError:
    what = ', '.join(tried) if tried else 'nothing'
    if parsed.scheme == 'ssh':
        hint = 'set MLPROJ_SSH_KEY or load a key into ssh-agent'
    else:
        hint = 'set MLFLOW_GIT_PASSWORD (or MLPROJ_GIT_TOKEN) or configure a git credential helper'
    return SourceError(f'authentication to {parsed.host} failed (tried: {what}); {hint}', parsed.display)


def _candidates(parsed: ParsedURI, username_from_url: str | None, allowed: Any, secrets: Secrets,
                config: Any) -> list[tuple[str, Any]]:
    import pygit2

    ct = pygit2.enums.CredentialType
    out: list[tuple[str, Any]] = []
    user = username_from_url or parsed.username
    if allowed & ct.SSH_KEY:
        ssh_user = user or _default_ssh_user()
        key = env_value('MLPROJ_SSH_KEY')
        passphrase = env_value('MLPROJ_SSH_KEY_PASSPHRASE') or ''
        if key:
            key = os.path.expanduser(key)
            if not os.path.isfile(key):
                raise SourceError(f'MLPROJ_SSH_KEY file {key} does not exist', parsed.display)
            pub = key + '.pub'
            out.append(('MLPROJ_SSH_KEY', pygit2.Keypair(ssh_user, pub if os.path.isfile(pub) else None, key,
                                                        passphrase)))
        if os.environ.get('SSH_AUTH_SOCK'):
            out.append(('ssh-agent', pygit2.KeypairFromAgent(ssh_user)))
        ssh_dir = Path.home() / '.ssh'
        for name in ('id_ed25519', 'id_ecdsa', 'id_rsa'):
            key_path = ssh_dir / name
            if key_path.is_file():
                pub_path = key_path.with_name(name + '.pub')
                out.append((f'~/.ssh/{name}', pygit2.Keypair(ssh_user, str(pub_path) if pub_path.is_file() else None,
                                                            str(key_path), passphrase)))
    if allowed & ct.USERPASS_PLAINTEXT:
        if parsed.scheme in ('http', 'https'):
            for label, mlflow_user, password in _mlflow_pairs(user):
                secrets.add(password)
                out.append((label, pygit2.UserPass(mlflow_user, password)))
        if parsed.password is not None and parsed.username:
            secrets.add(parsed.password)
            out.append(('credentials in the URI', pygit2.UserPass(parsed.username, parsed.password)))
        if parsed.scheme in ('http', 'https'):
            token = env_value('MLPROJ_GIT_TOKEN')
            token_user = env_value('MLPROJ_GIT_USERNAME') or user or 'x-access-token'
            if token:
                out.append(('MLPROJ_GIT_TOKEN', pygit2.UserPass(token_user, token)))
            gh = os.environ.get('GITHUB_TOKEN')
            if gh and _host_only(parsed.host) in _github_hosts():
                out.append(('GITHUB_TOKEN', pygit2.UserPass(user or 'x-access-token', gh)))
            out.append(('git credential helper', _LazyHelper(parsed, user, secrets, config)))
    return out


class _LazyHelper:
    def __init__(self, parsed: ParsedURI, user: str | None, secrets: Secrets, config: Any) -> None:
        self.parsed, self.user, self.secrets, self.config = parsed, user, secrets, config

    def resolve(self) -> Any:
        import pygit2

        got = credential_from_helpers(self.parsed, self.user, self.config)
        if got is None:
            return None
        username, password = got
        self.secrets.add(password)
        return pygit2.UserPass(username, password)


# --------------------------------------------------------------------------------------------
# git credential helpers


def _helpers(config: Any, parsed: ParsedURI) -> list[str]:
    """``credential.helper`` values that apply to this URL, in Git's order (an empty value resets)."""
    if config is None:
        return []
    url = f'{parsed.scheme}://{parsed.host}'
    found: list[str] = []
    try:
        entries = list(config)
    except Exception:
        return []
    for entry in entries:
        name = entry.name
        if not name.lower().startswith('credential.') or not name.lower().endswith('.helper'):
            continue
        middle = name[len('credential.'):-len('.helper')]
        if middle and not (url + '/').startswith(middle.rstrip('/') + '/') and middle.rstrip('/') != url:
            continue
        value = entry.value or ''
        if not value:
            found = []
        else:
            found.append(value)
    return found


def credential_from_helpers(parsed: ParsedURI, user: str | None, config: Any) -> tuple[str, str] | None:
    request = f'protocol={parsed.scheme}\nhost={parsed.host}\n'
    if user:
        request += f'username={user}\n'
    request += '\n'
    for helper in _helpers(config, parsed):
        if helper.startswith('!'):
            command = helper[1:]
        elif os.path.isabs(helper.split()[0] if helper.split() else helper):
            command = helper
        else:
            command = f'git credential-{helper}'
        env = {**os.environ, 'GIT_TERMINAL_PROMPT': '0', 'GCM_INTERACTIVE': 'never', 'SSH_ASKPASS': '',
               'GIT_ASKPASS': ''}
        try:
            # helpers are shell snippets by Git's definition; the request goes through stdin
            proc = subprocess.run(['/bin/sh', '-c', command + ' get'], input=request, capture_output=True,
                                  text=True, timeout=HELPER_TIMEOUT, env=env, start_new_session=True)
        except (OSError, subprocess.TimeoutExpired) as e:
            print(f'mlproj: warning: git credential helper failed: {type(e).__name__}', file=sys.stderr)
            continue
        if proc.returncode != 0:
            continue
        values: dict[str, str] = {}
        for line in proc.stdout.splitlines():
            key, sep, value = line.partition('=')
            if sep:
                values[key] = value
        if values.get('quit', '').lower() in _TRUE:
            return None
        if values.get('password'):
            return values.get('username') or user or 'x-access-token', values['password']
    return None
