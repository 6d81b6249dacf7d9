"""Revisions and tree exports shared by local repositories and cached mirrors.

An export writes exactly one commit's tree into a fresh directory with
``checkout_tree(directory=...)`` and ``DONT_UPDATE_INDEX``: the repository's working tree,
index, HEAD and refs are never written.  Submodules are exported the same way, recursively,
from the superproject's own ``modules/`` directory when it has the commit, else from the clone
cache.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from mlproj.errors import SourceError, first_line
from mlproj.source.redact import redact
from mlproj.source.uri import is_full_sha, normalize_subdirectory

MAX_SUBMODULE_DEPTH = 8
GITLINK = 0o160000


class Revision(NamedTuple):
    commit: str            # full SHA
    branch: str | None     # set when the revision named a branch (or the default branch was used)


def contained_subdirectory(root: Path, sub: str, uri: str) -> Path:
    """``root / sub`` after resolving symlinks, refusing anything that leaves ``root``."""
    root_real = root.resolve()
    target = (root_real / sub).resolve() if sub else root_real
    if target != root_real and root_real not in target.parents:
        raise SourceError(f'subdirectory {sub!r} escapes the repository through a symlink', uri)
    if not target.is_dir():
        raise SourceError(f'subdirectory {sub!r} does not exist', uri)
    return target


def find_commit(repo: Any, rev: str | None, where: str, secrets: Any = ()) -> Revision:
    """Resolve ``rev`` (None = HEAD) in ``repo`` to a commit; one-line errors name the revision."""
    import pygit2

    if rev is None:
        try:
            head = repo.references.get('HEAD')
            commit = repo.head.peel(pygit2.Commit)
        except (pygit2.GitError, KeyError, ValueError) as e:
            raise SourceError(f'the repository has no default branch ({first_line(e)})', where) from None
        branch = None
        if head is not None and head.type == pygit2.enums.ReferenceType.SYMBOLIC:
            target = head.target
            if isinstance(target, str) and target.startswith('refs/heads/'):
                branch = target[len('refs/heads/'):]
        return Revision(str(commit.id), branch)
    try:
        obj = repo.get(rev) if is_full_sha(rev) else None
        if obj is None:
            obj = repo.revparse_single(rev)
    except KeyError:
        raise SourceError(f'revision {rev!r} not found', where) from None
    except (pygit2.GitError, ValueError) as e:
        msg = redact(first_line(e), getattr(secrets, 'values', secrets))
        if 'ambiguous' in msg:
            raise SourceError(f'revision {rev!r} is ambiguous; give more characters of the SHA', where) from None
        raise SourceError(f'revision {rev!r} not found ({msg})', where) from None
    try:
        commit = obj.peel(pygit2.Commit)
    except (pygit2.GitError, ValueError, TypeError):
        raise SourceError(f'revision {rev!r} does not name a commit', where) from None
    branch = rev if f'refs/heads/{rev}' in repo.references else None
    return Revision(str(commit.id), branch)


def has_commit(repo: Any, sha: str) -> bool:
    import pygit2

    try:
        obj = repo.get(sha)
    except (ValueError, pygit2.GitError):
        return False
    if obj is None:
        return False
    try:
        obj.peel(pygit2.Commit)
    except (pygit2.GitError, ValueError, TypeError):
        return False
    return True


def export_commit(repo: Any, sha: str, dest: Path) -> None:
    """Write the tree of commit ``sha`` into ``dest`` (created if missing); touches nothing in ``repo``.

    Blobs are written as stored (like ``git archive``), executables keep their bit, symlinks stay
    symlinks and submodule paths become empty directories.  Files are created with
    ``O_EXCL | O_NOFOLLOW`` and directories with ``mkdir`` (no ``exist_ok``), so a hostile tree can
    never make the export write through a symlink or outside ``dest``.
    """
    import pygit2

    commit = repo[sha].peel(pygit2.Commit)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        _write_tree(repo, commit.tree, str(dest))
    except OSError as e:
        raise SourceError(f'cannot export commit {sha[:12]}: {e.strerror} ({e.filename})', str(dest)) from None
    except pygit2.GitError as e:
        raise SourceError(f'cannot export commit {sha[:12]}: {first_line(e)}', str(dest)) from None


_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0)


def _write_tree(repo: Any, tree: Any, dest: str) -> None:
    for entry in tree:
        name = entry.name
        if not name or name in ('.', '..') or '/' in name or '\0' in name or name.lower() == '.git':
            raise SourceError(f'unsafe path {name!r} in the repository tree', dest)
        path = os.path.join(dest, name)
        mode = entry.filemode
        if mode == 0o040000:
            os.mkdir(path)
            _write_tree(repo, repo[entry.id], path)
        elif mode == 0o120000:
            os.symlink(os.fsdecode(repo[entry.id].data), path)
        elif mode == GITLINK:
            os.mkdir(path)
        else:
            write_blob(path, repo[entry.id].data, mode == 0o100755)


def write_blob(path: str, data: bytes, executable: bool) -> None:
    """Create ``path`` (never through an existing file or symlink) holding ``data``."""
    fd = os.open(path, _FLAGS, 0o777 if executable else 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


class Submodule(NamedTuple):
    name: str
    path: str
    url: str
    commit: str


def submodules_of(repo: Any, sha: str, where: str) -> list[Submodule]:
    """Submodules of commit ``sha``: ``.gitmodules`` entries whose path is a gitlink in the tree."""
    import pygit2

    tree = repo[sha].peel(pygit2.Commit).tree
    try:
        entry = tree['.gitmodules']
    except KeyError:
        return []
    data = repo[entry.id].data
    import tempfile  # lazily: ~3 ms (shutil, random) on the run path of every local project

    with tempfile.NamedTemporaryFile('wb', suffix='.gitmodules', delete=False) as f:
        f.write(data)
        tmp = f.name
    try:
        config = pygit2.Config(tmp)
        values: dict[str, dict[str, str]] = {}
        for item in config:
            name = item.name
            if not name.startswith('submodule.'):
                continue
            mod, _, key = name[len('submodule.'):].rpartition('.')
            values.setdefault(mod, {})[key] = item.value or ''
    except pygit2.GitError as e:
        raise SourceError(f'cannot parse .gitmodules of {sha[:12]}: {first_line(e)}', where) from None
    finally:
        os.unlink(tmp)
    out = []
    for name, v in values.items():
        path, url = v.get('path'), v.get('url')
        if not path or not url or v.get('update', '').lower() == 'none':
            continue
        path = normalize_subdirectory(path, where)
        if not path:
            continue
        if url.startswith('-'):
            raise SourceError(f'submodule {name!r} has a URL that looks like an option', where)
        try:
            obj = tree / path
        except KeyError:
            continue
        if obj.filemode != GITLINK:
            continue
        out.append(Submodule(name, path, url, str(obj.id)))
    return out


# (submodule, absolute url, destination, depth) -> exports the submodule and its own submodules
SubmoduleExporter = Callable[[Submodule, str, Path, int], None]


def export_submodules(repo: Any, sha: str, dest: Path, base_url: str, where: str,
                      export_one: SubmoduleExporter, depth: int = 0) -> None:
    """Export every submodule of ``sha`` into ``dest/<path>``; ``export_one`` fetches and recurses."""
    from mlproj.source.uri import relative_url

    if depth >= MAX_SUBMODULE_DEPTH:
        raise SourceError(f'submodules nested deeper than {MAX_SUBMODULE_DEPTH} levels', where)
    for sub in submodules_of(repo, sha, where):
        url = relative_url(base_url, sub.url) if sub.url.startswith(('./', '../')) else sub.url
        target = dest / sub.path
        if not os.path.lexists(target.parent):
            continue  # outside the cone of a sparse checkout
        real_dest = dest.resolve()
        if real_dest not in target.resolve().parents:
            raise SourceError(f'submodule path {sub.path!r} escapes the checkout', where)
        export_one(sub, url, target, depth + 1)
