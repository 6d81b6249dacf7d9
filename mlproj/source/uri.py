"""Parse and validate project URIs, ``#subdirectory`` fragments and revision expressions.

Accepted forms (the part before ``#``):

* ``https://host/org/repo(.git)``, ``http://...`` (optionally ``user:token@host``)
* ``ssh://[user@]host[:port]/path``, ``git+ssh://...``, scp-like ``[user@]host:path``
* ``git://host[:port]/path``
* ``file:///abs/path`` and plain paths (absolute, relative, ``~``), inside or outside a Git repo

Anything else is refused before any network or subprocess is touched: other schemes, Git's
``<transport>::<address>`` helper syntax (``ext::``, ``fd::``), control characters, hosts or
paths that start with ``-`` (they would become options of ssh), and subdirectories leaving the
repository.
"""
from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from mlproj.errors import SourceError
from mlproj.source.redact import strip_credentials

REMOTE_SCHEMES = ('https', 'http', 'ssh', 'git+ssh', 'ssh+git', 'git')
MAX_REVISION = 256

_SCHEME = re.compile(r'^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://')
_HELPER = re.compile(r'^(?P<transport>[A-Za-z][A-Za-z0-9+.-]*)::')
_SCP = re.compile(r'^(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[^\]/]+\]|[^@/:\s\[\]]+):(?P<path>.*)$')
_HEX = re.compile(r'^[0-9a-fA-F]+$')


class ParsedURI(NamedTuple):
    kind: str              # 'local' or 'remote'
    url: str               # remote: URL for libgit2 (no password); local: absolute path
    display: str           # the URI without credentials and without the fragment
    subdirectory: str      # normalised; '' = repository root
    scheme: str = ''       # remote: https, http, ssh, git; local: '' or 'file'
    host: str = ''         # remote host (with port when given)
    username: str | None = None
    password: str | None = None   # from user:password@ in an http(s) URL; never displayed
    archive: bool = False         # a .zip archive (local file or http(s) download), not a Git repository

    @property
    def is_remote(self) -> bool:
        return self.kind == 'remote'


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def safe_repr(text: str) -> str:
    """A printable, credential-free form of user input for error messages."""
    return repr(strip_credentials(text))[1:-1]


def split_subdirectory(uri: str) -> tuple[str, str]:
    """Split ``uri#sub/dir`` at the first ``#`` (quotes around the whole URI are dropped, as MLflow).

    ``#`` and ``#.`` mean the root; the subdirectory must stay inside the repository.
    """
    uri = uri.strip().strip('\'"')
    base, sep, sub = uri.partition('#')
    return base, normalize_subdirectory(sub, strip_credentials(uri)) if sep else ''


def normalize_subdirectory(sub: str, uri: str = '') -> str:
    where = safe_repr(uri) if uri else None
    if _has_control(sub):
        raise SourceError('subdirectory contains control characters', where)
    if sub.startswith(('/', '\\', '~')) or (len(sub) > 1 and sub[1] == ':'):
        raise SourceError(f'subdirectory {sub!r} must be relative to the repository root', where)
    parts = [p for p in PurePosixPath(sub.replace('\\', '/')).parts if p not in ('', '.')]
    if '..' in parts:
        raise SourceError(f'subdirectory {sub!r} escapes the repository', where)
    if any(p == '.git' for p in parts):
        raise SourceError(f'subdirectory {sub!r} points into Git metadata', where)
    return '/'.join(parts)


def check_revision(version: str | None) -> str | None:
    """Validate a ``--version`` revision expression; ``None``/empty means the default branch."""
    if version is None:
        return None
    rev = version.strip()
    if not rev:
        return None
    if _has_control(rev) or any(c.isspace() for c in rev):
        raise SourceError(f'revision {safe_repr(rev)!r} contains whitespace or control characters')
    if rev.startswith('-'):
        raise SourceError(f'revision {rev!r} looks like an option')
    if len(rev) > MAX_REVISION:
        raise SourceError(f'revision is longer than {MAX_REVISION} characters')
    if '..' in rev:
        raise SourceError(f'revision {rev!r} is a range; give a single revision')
    return rev


def is_full_sha(rev: str | None) -> bool:
    return rev is not None and len(rev) in (40, 64) and bool(_HEX.match(rev))


def parse(uri: str, cwd: str | os.PathLike[str] | None = None) -> ParsedURI:
    """Classify ``uri`` as a local path or a Git remote, validating every part."""
    raw = uri.strip().strip('\'"')
    if _has_control(raw):
        raise SourceError('URI contains control characters', safe_repr(raw))
    base, subdir = split_subdirectory(raw)
    cwd = Path(cwd or os.getcwd())
    if not base:
        base = '.'
    helper = _HELPER.match(base)
    if helper and not _SCHEME.match(base):
        raise SourceError(f'Git transport helper {helper.group("transport")}:: is not allowed',
                          safe_repr(base))
    m = _SCHEME.match(base)
    if m:
        scheme = m.group('scheme').lower()
        if scheme == 'file':
            return _parse_file_uri(base, subdir)
        if scheme not in REMOTE_SCHEMES:
            raise SourceError(f'unsupported URI scheme {scheme!r} (use https, http, ssh, git, file or a path)',
                              safe_repr(base))
        return _parse_url(base, scheme, subdir)
    local = Path(cwd, os.path.expanduser(base))
    if os.path.lexists(local):
        return ParsedURI('local', str(local), base, subdir, archive=_is_zip(base) and local.is_file())
    scp = _SCP.match(base)
    if scp and not _looks_like_path(base):
        return _parse_scp(base, scp, subdir)
    raise SourceError('project directory does not exist', safe_repr(base))


def _looks_like_path(base: str) -> bool:
    windows_drive = len(base) > 1 and base[1] == ':' and base[0].isalpha()
    return base.startswith(('/', './', '../', '~')) or windows_drive


def _parse_file_uri(base: str, subdir: str) -> ParsedURI:
    parts = urlsplit(base)
    if parts.netloc not in ('', 'localhost'):
        raise SourceError(f'file:// URI with a remote host {parts.netloc!r} is not supported', safe_repr(base))
    path = unquote(parts.path)
    if not path.startswith('/'):
        raise SourceError('file:// URI needs an absolute path', safe_repr(base))
    if not os.path.lexists(path):
        raise SourceError('project directory does not exist', safe_repr(base))
    return ParsedURI('local', path, base, subdir, scheme='file', archive=_is_zip(path) and os.path.isfile(path))


def _is_zip(path: str) -> bool:
    return path.lower().endswith('.zip')


def _check_host(host: str, where: str) -> None:
    if not host:
        raise SourceError('URI has no host', where)
    if host.startswith('-'):
        raise SourceError(f'host {host!r} looks like an option', where)
    if not re.match(r'^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%!$&\'()*+,;=-]+)(:\d{1,5})?$', host):
        raise SourceError(f'invalid host {host!r}', where)


def _parse_url(base: str, scheme: str, subdir: str) -> ParsedURI:
    where = safe_repr(base)
    rest = base[_SCHEME.match(base).end():]  # type: ignore[union-attr]
    authority, slash, path = rest.partition('/')
    path = slash + path
    userinfo, _, hostport = authority.rpartition('@')
    if '\\' in hostport or '\\' in path:
        raise SourceError('URI contains a backslash', where)
    username, password = None, None
    if userinfo:
        user, has_pw, pw = userinfo.partition(':')
        username = unquote(user) or None
        password = unquote(pw) if has_pw else None
        if username and username.startswith('-') and scheme != 'https' and scheme != 'http':
            raise SourceError(f'user name {username!r} looks like an option', where)
    _check_host(hostport, where)
    if not path or path == '/':
        raise SourceError('URI has no repository path', where)
    if '?' in path:
        raise SourceError('URI must not have a query string', where)
    if scheme in ('git+ssh', 'ssh+git'):
        scheme = 'ssh'
    if scheme == 'ssh':
        # libgit2 gets the user name (not a password) in the URL
        auth = f'{user}@' if userinfo and (user := userinfo.partition(':')[0]) else ''
        url = f'ssh://{auth}{hostport}{path}'
    else:
        if scheme == 'git' and userinfo:
            raise SourceError('git:// URIs cannot carry credentials', where)
        url = f'{scheme}://{hostport}{path}'
    display = strip_credentials(base)
    archive = scheme in ('http', 'https') and _is_zip(path)
    return ParsedURI('remote', url, display, subdir, scheme, hostport, username, password, archive)


def _parse_scp(base: str, m: re.Match[str], subdir: str) -> ParsedURI:
    where = safe_repr(base)
    user, host, path = m.group('user'), m.group('host'), m.group('path')
    if user and user.startswith('-'):
        raise SourceError(f'user name {user!r} looks like an option', where)
    _check_host(host, where)
    if not path or path.startswith('-'):
        raise SourceError(f'invalid repository path {path!r}', where)
    return ParsedURI('remote', base, base, subdir, 'ssh', host, user, None)


def relative_url(base_url: str, relative: str) -> str:
    """Resolve a submodule URL like ``../other.git`` against the superproject URL (as Git does)."""
    base = base_url.rstrip('/')
    m = _SCHEME.match(base)
    scp = None if m else _SCP.match(base)
    if m:
        rest = base[m.end():]
        netloc, slash, path = rest.partition('/')
        prefix, path = f'{base[:m.end()]}{netloc}/', path
    elif scp and not _looks_like_path(base):
        path = scp.group('path')
        prefix = base[: len(base) - len(path)]
    else:
        prefix, path = '', base
    absolute = path.startswith('/') and not m
    parts = [p for p in path.split('/') if p]
    rel = relative
    while True:
        if rel.startswith('./'):
            rel = rel[2:]
        elif rel.startswith('../'):
            rel = rel[3:]
            if not parts:
                raise SourceError(f'submodule URL {relative!r} climbs above {strip_credentials(base_url)!r}')
            parts.pop()
        else:
            break
    if rel:
        parts.append(rel)
    joined = '/'.join(parts)
    return f'{prefix}{"/" if absolute else ""}{joined}'
