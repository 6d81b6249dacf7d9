"""Run checkouts as real Git working trees that borrow their objects read-only.

A checkout is what project code sees as its repository: ``git rev-parse HEAD``, GitPython,
``mlflow.start_run()``'s source tags and a nested ``mlflow.run(".")`` all ask Git for the commit.
So every checkout mlproj makes is a non-bare repository with

* a detached ``HEAD`` at exactly the commit that was run (``.git/HEAD`` holds the SHA);
* no objects of its own: ``.git/objects/info/alternates`` names the object directory of the
  clone-cache mirror (or of the user's local repository for ``-v``).  Git and libgit2 only ever
  *read* alternates; new objects a project might create land in the checkout's own
  ``.git/objects`` and vanish with it.  A shallow mirror's ``shallow`` file is copied so history
  walks stop where the mirror's history stops;
* ``remote.origin.url`` set to the credential-free source URL, so MLflow's
  ``mlflow.source.git.repoURL`` of a nested run names the repository, not a temp dir;
* an index matching the files, so ``git status`` is clean.

Full trees are written by libgit2's ``checkout_tree`` (it validates every path, refuses ``.git``
entries and never writes through a symlink, and fills the index with stat data).

With ``MLPROJ_SPARSE_CHECKOUT=1``, ``#subfolder`` checkouts are *sparse*: a cone-mode sparse
checkout of the subfolder (plus any
extra directories asked for), i.e. the files directly in every ancestor directory of the cone
(where ``python_env: ../python_env.yaml`` lives) and everything below the cone.  Directories outside
the cone are never walked: their trees go into a *sparse index* (Git >= 2.32, ``index.sparse``)
as one skip-worktree directory entry each, so a 50k-file monorepo costs what its 100-file
subfolder costs.  libgit2 has no sparse-index writer (its ``Index`` can neither store directory
entries nor the ``sdir`` extension), so ``_write_index`` writes the documented index format
(version 2/3, ``Documentation/gitformat-index.txt``) itself: about 40 lines, used only for sparse
checkouts, and tested against ``git ls-files``/``git status`` and libgit2's reader.
Sparse is opt-in: project code run by ``mlflow run`` sees the whole clone and may read sibling
directories (``../common``), and libgit2-based tools cannot read a sparse index, so the default is
a full checkout.  A cone path that is not a directory of the commit (a symlink to one, or missing:
then the usual error follows) always gets a full checkout.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import struct
from pathlib import Path
from typing import Any

from mlproj.errors import SourceError, first_line
from mlproj.source.tree import write_blob

GITLINK = 0o160000
TREE = 0o040000
LINK = 0o120000


def sparse_enabled() -> bool:
    from mlproj.settings import env_value

    return bool(env_value('MLPROJ_SPARSE_CHECKOUT'))


def common_dir(repo: Any) -> Path:
    """The directory holding ``objects/`` (a linked worktree's ``commondir``, else ``repo.path``)."""
    path = Path(repo.path)
    try:
        rel = (path / 'commondir').read_text(encoding='utf-8').strip()
    except OSError:
        return path.resolve()
    return (path / rel).resolve()


def make_worktree(repo: Any, sha: str, dest: Path, *, origin_url: str | None = None,
                  cone: list[str] | None = None) -> None:
    """Make ``dest`` a working tree of commit ``sha`` of ``repo`` (objects borrowed, detached HEAD).

    ``cone``: repository-relative directories for a sparse checkout (``None`` or ``['']`` = full).
    Touches nothing in ``repo``.
    """
    import pygit2

    commit = repo[sha].peel(pygit2.Commit)
    dest.mkdir(parents=True, exist_ok=True)
    source = common_dir(repo)
    try:
        wt = pygit2.init_repository(str(dest), bare=False)
        git_dir = Path(wt.path)
        (git_dir / 'objects' / 'info').mkdir(parents=True, exist_ok=True)
        # an absolute path: git resolves relative alternates against the checkout's objects dir
        (git_dir / 'objects' / 'info' / 'alternates').write_text(f'{source / "objects"}\n', encoding='utf-8')
        if (source / 'shallow').is_file():
            shutil.copyfile(source / 'shallow', git_dir / 'shallow')
        wt = pygit2.Repository(str(dest))  # reopen: the object database now sees the alternate
        if origin_url:
            wt.remotes.create('origin', origin_url)
        tree = wt[commit.tree_id]  # libgit2 wants objects looked up through the checkout itself
        cone = [c for c in (cone or []) if c]
        if cone and sparse_enabled() and all(_is_tree(tree, c) for c in cone):
            _sparse_checkout(wt, git_dir, tree, dest, sorted(set(cone)))
        else:
            wt.checkout_tree(tree, strategy=pygit2.enums.CheckoutStrategy.FORCE)
        (git_dir / 'HEAD').write_text(f'{commit.id}\n', encoding='utf-8')
    except OSError as e:
        raise SourceError(f'cannot check out commit {sha[:12]}: {e.strerror} ({e.filename})', str(dest)) from None
    except pygit2.GitError as e:
        raise SourceError(f'cannot check out commit {sha[:12]}: {first_line(e)}', str(dest)) from None


# -- sparse checkouts ------------------------------------------------------------------------

def _is_tree(tree: Any, path: str) -> bool:
    """``path`` names a directory of ``tree`` (a missing path or a symlink gets a full checkout,
    and the caller's own check reports it as it always did)."""
    try:
        return (tree / path).filemode == TREE
    except (KeyError, ValueError):
        return False


def cone_patterns(cone: list[str]) -> str:
    """``.git/info/sparse-checkout`` in cone mode (what ``git sparse-checkout set`` writes)."""
    lines = ['/*', '!/*/']
    parents: set[str] = set()
    for d in cone:
        parts = d.split('/')
        for i in range(1, len(parts)):
            parents.add('/'.join(parts[:i]))
    recursive = [d for d in cone if not any(d.startswith(o + '/') for o in cone if o != d)]
    for p in sorted(parents - set(recursive)):
        lines += [f'/{p}/', f'!/{p}/*/']
    lines += [f'/{d}/' for d in recursive]
    return '\n'.join(lines) + '\n'


def _sparse_checkout(wt: Any, git_dir: Path, tree: Any, dest: Path, cone: list[str]) -> None:
    config = wt.config
    config['core.sparseCheckout'] = True
    config['core.sparseCheckoutCone'] = True
    config['index.sparse'] = True
    (git_dir / 'info').mkdir(exist_ok=True)
    (git_dir / 'info' / 'sparse-checkout').write_text(cone_patterns(cone), encoding='utf-8')
    recursive = {d for d in cone}
    parents = {'/'.join(d.split('/')[:i]) for d in cone for i in range(1, d.count('/') + 1)}
    entries: list[tuple[bytes, int, bytes, Any, bool]] = []
    _walk(wt, tree, str(dest), '', recursive, parents, entries)
    _write_index(git_dir / 'index', entries, sparse=True)


def _walk(repo: Any, tree: Any, dest: str, prefix: str, recursive: set[str], parents: set[str],
          entries: list, full: bool = False) -> None:
    """Write the cone's part of ``tree`` under ``dest``; collect index entries (sparse dirs too)."""
    for entry in tree:
        name = entry.name
        if not name or name in ('.', '..') or '/' in name or '\0' in name or name.lower() == '.git':
            raise SourceError(f'unsafe path {name!r} in the repository tree', dest)
        rel = prefix + name
        path = os.path.join(dest, name)
        mode = entry.filemode
        if mode == TREE:
            if full or rel in recursive:
                os.mkdir(path)
                _walk(repo, repo[entry.id], path, rel + '/', recursive, parents, entries, True)
            elif rel in parents:
                os.mkdir(path)
                _walk(repo, repo[entry.id], path, rel + '/', recursive, parents, entries)
            else:
                entries.append((os.fsencode(rel + '/'), TREE, entry.id.raw, None, True))
            continue
        if mode == LINK:
            os.symlink(os.fsdecode(repo[entry.id].data), path)
        elif mode == GITLINK:
            os.mkdir(path)
            entries.append((os.fsencode(rel), mode, entry.id.raw, None, False))
            continue
        else:
            write_blob(path, repo[entry.id].data, mode == 0o100755)
        entries.append((os.fsencode(rel), mode, entry.id.raw, os.lstat(path), False))


def _write_index(path: Path, entries: list[tuple[bytes, int, bytes, Any, bool]], sparse: bool) -> None:
    """A Git index (v2, or v3 when an entry is skip-worktree), with ``sdir`` for a sparse index.

    ``entries``: (path bytes, mode, raw oid, lstat result or None, skip_worktree).  Stat data
    lets ``git status`` trust unchanged files without re-reading them; entries without it
    (gitlinks, sparse directories) carry zeros, as Git writes them.
    """
    entries = sorted(entries, key=lambda e: e[0])
    version = 3 if any(e[4] for e in entries) else 2
    out = [b'DIRC', struct.pack('>II', version, len(entries))]
    m = 0xFFFFFFFF
    for name, mode, oid, st, skip in entries:
        if st is not None:
            stat = (int(st.st_ctime) & m, st.st_ctime_ns % 1_000_000_000, int(st.st_mtime) & m,
                    st.st_mtime_ns % 1_000_000_000, st.st_dev & m, st.st_ino & m, mode, st.st_uid & m,
                    st.st_gid & m, st.st_size & m)
        else:
            stat = (0, 0, 0, 0, 0, 0, mode, 0, 0, 0)
        flags = min(len(name), 0xFFF) | (0x4000 if skip else 0)
        record = struct.pack('>10I', *stat) + oid + struct.pack('>H', flags)
        if skip:
            record += struct.pack('>H', 0x4000)  # extended flag: skip-worktree
        record += name
        record += b'\0' * (8 - len(record) % 8)
        out.append(record)
    if sparse:
        out.append(b'sdir' + struct.pack('>I', 0))
    data = b''.join(out)
    tmp = path.with_name('index.lock')
    with open(tmp, 'wb') as f:
        f.write(data + hashlib.sha1(data).digest())  # noqa: S324 - the index format's own checksum
    os.replace(tmp, path)
