"""Local project directories, inside or outside a Git repository."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

from mlproj.errors import SourceError
from mlproj.source import ResolvedSource


def split_subdirectory(uri: str) -> tuple[str, str]:
    """Split ``uri#sub/dir`` at the first ``#``; quotes around the whole URI are dropped (as MLflow).

    The subdirectory is normalised ('' for the root; ``#`` and ``#.`` mean the root) and must stay
    inside the checkout.
    """
    uri = uri.strip().strip('\'"')
    base, sep, sub = uri.partition('#')
    return base, normalize_subdirectory(sub, uri) if sep else ''


def normalize_subdirectory(sub: str, uri: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in sub):
        raise SourceError('subdirectory contains control characters', uri)
    if sub.startswith('/') or sub.startswith('\\') or (len(sub) > 1 and sub[1] == ':'):
        raise SourceError(f'subdirectory {sub!r} must be relative to the repository root', uri)
    parts = [p for p in PurePosixPath(sub.replace('\\', '/')).parts if p not in ('', '.')]
    if '..' in parts:
        raise SourceError(f'subdirectory {sub!r} escapes the repository', uri)
    return '/'.join(parts)


def contained_subdirectory(root: Path, sub: str, uri: str) -> Path:
    """``root / sub`` after resolving symlinks, refusing anything that leaves ``root``."""
    root_real = root.resolve()
    target = (root_real / sub).resolve() if sub else root_real
    if target != root_real and root_real not in target.parents:
        raise SourceError(f'subdirectory {sub!r} escapes the repository through a symlink', uri)
    if not target.is_dir():
        raise SourceError(f'subdirectory {sub!r} does not exist', uri)
    return target


def strip_credentials(url: str) -> str:
    """Remove ``user:password@`` / ``token@`` from a URL (scp-like ``git@host:`` is kept)."""
    scheme, sep, rest = url.partition('://')
    if not sep:
        return url
    authority, slash, path = rest.partition('/')
    if '@' in authority:
        userinfo, _, host = authority.rpartition('@')
        user = userinfo.split(':', 1)[0]
        keep_user = scheme.startswith('ssh') and ':' not in userinfo and user
        authority = f'{user}@{host}' if keep_user else host
    return f'{scheme}://{authority}{slash}{path}'


def git_info(path: Path) -> dict | None:
    """Commit, first remote, dirty flag and diff hash of the repository containing ``path``."""
    import pygit2

    try:
        repo_path = pygit2.discover_repository(str(path))
    except pygit2.GitError:
        return None
    if repo_path is None:
        return None
    try:
        repo = pygit2.Repository(repo_path)
    except pygit2.GitError:
        return None
    if repo.is_bare or repo.head_is_unborn:
        return None
    workdir = Path(repo.workdir)
    commit = str(repo.head.target)
    remote_url = None
    for remote in repo.remotes:
        if remote.url:
            remote_url = strip_credentials(remote.url)
            break
    branch = None
    if not repo.head_is_detached:
        branch = repo.head.shorthand
    dirty, diff_hash = _dirty_state(repo)
    return {'root': workdir, 'commit': commit, 'repo_url': remote_url, 'branch': branch,
            'dirty': dirty, 'diff_hash': diff_hash}


def _dirty_state(repo) -> tuple[bool, str | None]:
    import pygit2

    flags = repo.status(untracked_files='no')
    if not flags:
        return False, None
    digest = hashlib.sha256()
    try:
        head_tree = repo.head.peel(pygit2.Tree)
        patch = repo.diff(head_tree)  # working tree (incl. index) against HEAD
        digest.update((patch.patch or '').encode('utf-8', 'surrogateescape'))
    except (pygit2.GitError, ValueError):
        for path in sorted(flags):
            digest.update(path.encode('utf-8', 'surrogateescape'))
    return True, digest.hexdigest()


def resolve_local(uri: str, path: Path, subdir: str, *, version: str | None = None,
                  require_clean: bool = False) -> ResolvedSource:
    path = path.resolve()
    if version:
        raise SourceError('--version on a local directory is not supported yet', uri)
    project_dir = contained_subdirectory(path, subdir, uri)
    info = git_info(project_dir)
    if info is None:
        return ResolvedSource(uri=strip_credentials(uri), project_dir=project_dir, root=path,
                              subdirectory=subdir, source_name=str(project_dir))
    root = info['root'].resolve()
    rel = os.path.relpath(project_dir, root)
    rel = '' if rel == '.' else rel.replace(os.sep, '/')
    if info['dirty'] and require_clean:
        raise SourceError('the working tree has uncommitted changes (--require-clean)', str(root))
    source_name = f'file://{root}' + (f'#{rel}' if rel else '')
    return ResolvedSource(
        uri=strip_credentials(uri), project_dir=project_dir, root=root, subdirectory=rel,
        commit=info['commit'], repo_url=info['repo_url'], branch=None,
        dirty=info['dirty'], diff_hash=info['diff_hash'], source_name=source_name,
    )
