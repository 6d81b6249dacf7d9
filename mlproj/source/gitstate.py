"""A local work tree that pygit2 found clean, remembered until anything Git reads changes.

Why this exists: recording a local run's commit needs ``repo.status()``, and loading pygit2
alone costs 40-60 ms (libgit2 plus pygit2's enums), a third of the run path's whole overhead
budget on MLflow's sqlite store (issue 15, ``benchmarks/results/run.md``).  The answer is a
function of files whose metadata is cheap to read, so after pygit2 has found a tree **clean**
this module records, in ``<cache>/facts/gitstate/``:

* the stat signature (size, mtime, ctime, inode, mode) of ``.git/HEAD``, the branch's loose ref,
  ``packed-refs``, ``.git/config``, ``.git/index``, ``.git/info/attributes`` and the user's and
  system's Git config files (absent files included, as absent);
* the same signature of every tracked file in the work tree (the paths come from the index,
  which is covered by its own signature);
* the answer: root, commit, branch, first remote.

A later run whose signatures all match gets the same answer without loading pygit2; any
difference (an edit, a commit, a checkout, ``git add``, a config change, a touched file) falls
back to pygit2, which then records the new state.  A ctime cannot be set by a user, so an edit
that restores size and mtime is still seen.  Never remembered, always asked of pygit2:

* a dirty tree (its diff hash needs pygit2 anyway), a tree with submodules, conflicts or more
  than ``MAX_TRACKED`` files, a ``.git`` that is a file (linked work trees, submodules) or is
  owned by another user, a ``GIT_*`` variable that moves the repository, index or
  configuration (``GIT_DIR``, ``GIT_INDEX_FILE``, ``GIT_CONFIG*``...);
* a tree where any recorded file changed in the last ``RACY_SECONDS`` (a change within the
  same timestamp tick could go unseen: Git's "racily clean" problem).

Known limit: a *new, untracked* ``.gitattributes`` that changes how an already-modified-then-
restored file is filtered is not seen until the next change to a tracked file.  The tests
compare this module's answers with pygit2's over edits, staging, commits, branch switches,
touches, config changes and reverts (``tests/source/test_gitstate.py``).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from mlproj.cachedir import read_json_bounded

FORMAT = 1
MAX_TRACKED = 20_000
RACY_SECONDS = 2.0
MAX_ENTRY_BYTES = 8 << 20


def _sig(path: str) -> list[int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode]


def _find_root(path: Path) -> Path | None:
    """The work tree whose ``.git`` directory pygit2 would discover first from ``path``; None
    when discovery would find something else (a ``.git`` file, a bare repository) or nothing."""
    for p in (path, *path.parents):
        dotgit = p / '.git'
        if os.path.lexists(dotgit):
            return p if dotgit.is_dir() and not dotgit.is_symlink() else None
        if os.path.isfile(p / 'HEAD') and os.path.isdir(p / 'objects'):
            return None
    return None


def _git_files(root: Path) -> tuple[dict[str, list[int] | None], str | None] | None:
    """Signatures of the repository files that decide ``status``, plus the HEAD ref (None when
    detached); None when HEAD cannot be read."""
    git = root / '.git'
    try:
        with open(git / 'HEAD', 'rb') as f:
            head = f.read(4096).decode('utf-8', 'replace').strip()
    except OSError:
        return None
    ref = head[5:].strip() if head.startswith('ref: ') else None
    if ref is not None and (not ref.startswith('refs/') or '..' in ref.split('/')):
        return None
    names = ['HEAD', 'config', 'index', 'packed-refs', 'info/attributes'] + ([ref] if ref else [])
    sigs: dict[str, list[int] | None] = {name: _sig(str(git / name)) for name in names}
    home = os.path.expanduser('~')
    xdg = os.environ.get('XDG_CONFIG_HOME') or os.path.join(home, '.config')
    for name in (os.path.join(home, '.gitconfig'), os.path.join(xdg, 'git', 'config'), '/etc/gitconfig'):
        sigs[name] = _sig(name)
    return sigs, ref


def _entry_path(root: Path) -> Path:
    from mlproj.cachedir import cache_root
    from mlproj.digest import sha256

    digest = sha256(os.fsencode(str(root))).hexdigest()[:32]
    return cache_root() / 'facts' / 'gitstate' / f'{digest}.json'


# variables that change which repository, index or configuration Git reads (GIT_SSL_CAINFO,
# GIT_EDITOR and the like do not matter here)
_LOCATION_VARIABLES = ('GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_COMMON_DIR', 'GIT_OBJECT_DIRECTORY',
                       'GIT_ALTERNATE_OBJECT_DIRECTORIES', 'GIT_CEILING_DIRECTORIES',
                       'GIT_DISCOVERY_ACROSS_FILESYSTEM', 'GIT_NAMESPACE')


def _usable_environment() -> bool:
    return not any(os.environ.get(k) for k in _LOCATION_VARIABLES) and \
        not any(k.startswith('GIT_CONFIG') for k in os.environ)


def lookup(path: Path) -> dict[str, Any] | None:
    """``source.local.git_info``'s answer for the clean work tree containing ``path`` when
    nothing has changed since pygit2 last gave it; None means "ask pygit2"."""

    if not _usable_environment():
        return None
    root = _find_root(Path(os.path.abspath(path)))
    if root is None:
        return None
    try:
        if os.stat(root / '.git').st_uid != os.geteuid():
            return None
    except OSError:
        return None
    entry = read_json_bounded(_entry_path(root), MAX_ENTRY_BYTES)
    if not isinstance(entry, dict) or entry.get('format') != FORMAT or entry.get('root') != str(root):
        return None
    current = _git_files(root)
    if current is None or current[0] != entry.get('git'):
        return None
    files = entry.get('files')
    if not isinstance(files, dict):
        return None
    for rel, sig in files.items():
        if _sig(os.path.join(root, rel)) != sig:
            return None
    answer = entry.get('answer')
    if not isinstance(answer, dict):
        return None
    return {'root': root, 'commit': answer.get('commit'), 'repo_url': answer.get('repo_url'),
            'branch': answer.get('branch'), 'dirty': False, 'diff_hash': None}


def remember(repo: Any, info: dict[str, Any]) -> None:
    """Record pygit2's answer for a clean tree (``info`` from ``git_info``); silently nothing
    when the tree does not qualify or the cache cannot be written."""
    import json

    from mlproj.cachedir import write_text_atomic

    if info.get('dirty') or not _usable_environment():
        return
    root = Path(info['root']).resolve()
    if _find_root(root) != root:
        return
    try:
        index = repo.index
        if index.conflicts is not None or len(index) > MAX_TRACKED:
            return
        tracked = []
        for e in index:
            if e.mode == 0o160000:  # a submodule: its own HEAD and tree count too
                return
            tracked.append(e.path)
    except Exception:
        return
    before = _git_files(root)
    if before is None:
        return
    files = {rel: _sig(os.path.join(root, rel)) for rel in tracked}
    newest = max((s[1] for s in (*files.values(), *before[0].values()) if s), default=0)
    newest = max([newest] + [s[2] for s in (*files.values(), *before[0].values()) if s])
    if time.time_ns() - newest < RACY_SECONDS * 1e9:
        return
    if _git_files(root) != before:  # changed while we looked
        return
    entry = {'format': FORMAT, 'root': str(root), 'git': before[0], 'files': files,
             'answer': {'commit': info['commit'], 'repo_url': info['repo_url'], 'branch': info['branch']}}
    try:
        target = _entry_path(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target, json.dumps(entry, separators=(',', ':')))
    except OSError:
        pass
