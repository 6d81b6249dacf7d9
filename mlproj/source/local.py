"""Local project directories, inside or outside a Git repository (also ``file://`` URIs).

* No version: the project runs in place (as ``mlflow run``).  Inside a Git work tree the HEAD
  commit is recorded, and a dirty tree is recorded as a sha256 of its diff (or refused with
  ``--require-clean``).
* ``-v REV`` (or a bare repository): that commit is checked out into a fresh Git working tree
  that borrows the repository's objects read-only (``worktree.py``); the user's working tree,
  index, HEAD, refs and objects are never written.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mlproj.errors import SourceError
from mlproj.source import ResolvedSource
from mlproj.source.redact import strip_credentials
from mlproj.source.tree import contained_subdirectory
from mlproj.source.uri import ParsedURI, normalize_subdirectory, split_subdirectory

__all__ = ['strip_credentials', 'split_subdirectory', 'normalize_subdirectory', 'contained_subdirectory',
           'git_info', 'resolve_local']


def _may_be_in_repository(path: Path) -> bool:
    """A cheap negative check before importing pygit2: no ``.git`` and no bare-repository layout
    in ``path`` or any parent means there is no repository to discover."""
    if os.environ.get('GIT_DIR'):
        return True
    for p in (path, *path.parents):
        if os.path.lexists(p / '.git') or (os.path.isfile(p / 'HEAD') and os.path.isdir(p / 'objects')):
            return True
    return False


def open_repository(path: Path) -> Any:
    """The pygit2 repository containing ``path`` (work tree or bare), or None."""
    if not _may_be_in_repository(Path(os.path.abspath(path))):
        return None
    import pygit2

    try:
        found = pygit2.discover_repository(str(path))
    except pygit2.GitError:
        return None
    if found is None:
        return None
    try:
        return pygit2.Repository(found)
    except pygit2.GitError:
        return None


def _remote_url(repo: Any) -> str | None:
    remotes = list(repo.remotes)
    remotes.sort(key=lambda r: r.name != 'origin')
    for remote in remotes:
        if remote.url:
            return strip_credentials(remote.url)
    return None


def git_info(path: Path) -> dict | None:
    """Commit, first remote, dirty flag and diff hash of the work tree containing ``path``
    (a clean tree unchanged since pygit2 last looked is answered by ``gitstate``)."""
    from mlproj.source import gitstate

    known = gitstate.lookup(path)
    if known is not None:
        return known
    repo = open_repository(path)
    if repo is None or repo.is_bare or repo.head_is_unborn:
        return None
    workdir = Path(repo.workdir)
    commit = str(repo.head.target)
    branch = None if repo.head_is_detached else repo.head.shorthand
    dirty, diff_hash = _dirty_state(repo)
    info = {'root': workdir, 'commit': commit, 'repo_url': _remote_url(repo), 'branch': branch,
            'dirty': dirty, 'diff_hash': diff_hash}
    if not dirty:
        gitstate.remember(repo, info)
    return info


def _dirty_state(repo: Any) -> tuple[bool, str | None]:
    import pygit2

    try:
        flags = repo.status(untracked_files='no')
    except pygit2.GitError:
        # libgit2 cannot read a sparse index (the 'sdir' extension of an mlproj #subfolder
        # checkout, when project code runs mlproj on it): the state is unknown, not dirty
        return False, None
    if not flags:
        return False, None
    from mlproj.digest import sha256

    digest = sha256()
    try:
        head_tree = repo.head.peel(pygit2.Tree)
        patch = repo.diff(head_tree)  # working tree (incl. index) against HEAD
        digest.update((patch.patch or '').encode('utf-8', 'surrogateescape'))
    except (pygit2.GitError, ValueError):
        for path in sorted(flags):
            digest.update(path.encode('utf-8', 'surrogateescape'))
    return True, digest.hexdigest()


def _known_clean_tree(path: Path, subdirectory: str, where: str) -> dict | None:
    """``git_info`` of the project when ``gitstate`` already knows its work tree is clean (so
    the repository is not bare and pygit2 need not be loaded to find out)."""
    from mlproj.source import gitstate

    try:
        return gitstate.lookup(contained_subdirectory(path, subdirectory, where))
    except SourceError:
        return None


def resolve_local(parsed: ParsedURI, rev: str | None, *, require_clean: bool = False,
                  keep_checkout: bool = False) -> ResolvedSource:
    path = Path(parsed.url).resolve()
    where = strip_credentials(parsed.display)
    if not path.is_dir():
        raise SourceError('project URI must be a directory', where)
    known = _known_clean_tree(path, parsed.subdirectory, where) if rev is None else None
    repo = None if known is not None else open_repository(path)
    if rev is not None or (repo is not None and repo.is_bare):
        if repo is None:
            raise SourceError(f'--version {rev} needs a Git repository', where)
        return _export_local(repo, path, parsed, rev, keep_checkout)
    project_dir = contained_subdirectory(path, parsed.subdirectory, where)
    info = known or git_info(project_dir)
    if info is None:
        return ResolvedSource(uri=where + (f'#{parsed.subdirectory}' if parsed.subdirectory else ''),
                              project_dir=project_dir, root=path, subdirectory=parsed.subdirectory,
                              source_name=str(project_dir), origin_uri=path.as_uri())
    root = info['root'].resolve()
    rel = os.path.relpath(project_dir, root)
    rel = '' if rel == '.' else rel.replace(os.sep, '/')
    if info['dirty'] and require_clean:
        raise SourceError('the working tree has uncommitted changes (--require-clean)', str(root))
    source_name = root.as_uri() + (f'#{rel}' if rel else '')
    return ResolvedSource(
        uri=source_name, project_dir=project_dir, root=root, subdirectory=rel,
        commit=info['commit'], repo_url=info['repo_url'], branch=info['branch'],
        dirty=info['dirty'], diff_hash=info['diff_hash'], source_name=source_name, origin_uri=root.as_uri(),
    )


def _export_local(repo: Any, path: Path, parsed: ParsedURI, rev: str | None, keep_checkout: bool) -> ResolvedSource:
    from mlproj.source.cache import CloneCache
    from mlproj.source.git import Fetcher, export_submodules_from
    from mlproj.source.tree import find_commit
    from mlproj.source.worktree import make_worktree

    if repo.is_bare:
        root = Path(repo.path).resolve()
        base_rel = os.path.relpath(path, root)
        if base_rel != '.':
            raise SourceError('a path inside a bare repository is not a project directory', str(path))
        base_rel = ''
    else:
        root = Path(repo.workdir).resolve()
        base_rel = os.path.relpath(path, root).replace(os.sep, '/')
        base_rel = '' if base_rel == '.' else base_rel
        if base_rel == '.git' or base_rel.startswith('.git/'):
            raise SourceError('the project directory is inside .git', str(path))
    subdir = normalize_subdirectory('/'.join(p for p in (base_rel, parsed.subdirectory) if p))
    where = root.as_uri()
    revision = find_commit(repo, rev, where)
    store = CloneCache()
    checkout = store.new_checkout(revision.commit, where, keep_checkout)
    try:
        make_worktree(repo, revision.commit, checkout, origin_url=_remote_url(repo), cone=[subdir] if subdir else None)
        base_url = _remote_url(repo) or str(root)
        modules = None if repo.is_bare else Path(repo.path) / 'modules'
        export_submodules_from(Fetcher(store), repo, revision.commit, checkout, base_url, where, modules)
        project_dir = contained_subdirectory(checkout, subdir, f'{where} at {revision.commit[:12]}')
    except BaseException:
        store.remove_checkout(checkout)
        raise
    if keep_checkout:
        print(f'mlproj: checkout of {revision.commit[:12]} kept at {checkout}', file=sys.stderr)
    source_name = where + (f'#{subdir}' if subdir else '')
    return ResolvedSource(
        uri=source_name, project_dir=project_dir, root=checkout, subdirectory=subdir, commit=revision.commit,
        repo_url=_remote_url(repo), branch=revision.branch, version=rev, source_name=source_name,
        origin_uri=where, _cleanup=None if keep_checkout else (lambda: store.remove_checkout(checkout)),
    )
