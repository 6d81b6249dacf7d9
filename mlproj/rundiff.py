"""``mlproj runs diff RUN_A RUN_B``: what changed between two recorded runs, in one screen.

Everything is read from the tracking store (the runs' tags, params and the lock artifact
``mlproj/requirements.lock.txt`` of ``mlproj.envs.lock``) and from Git repositories already on this
machine; nothing is fetched.

* **source and commits**: the two recorded commits (``mlflow.source.git.commit``).  The commit
  range is counted in the first repository that holds both commits: a local repository the runs
  name (their source URI is a local path), else any mirror of the clone cache.  ``ahead`` is the
  number of commits in ``A..B`` (reachable from B, not from A), ``behind`` those in ``B..A``.
  When no repository holds both, only the two SHAs are shown.  The clone cache's first clone
  is shallow: a mirror whose history does not reach the commits' common ancestor gives no count
  (a note says so) rather than a wrong one; a complete history is preferred where there is one.
* **files**: the files that differ between the two commits' trees under B's subdirectory
  (``mlproj.source.subdirectory``; all files when the project is at the repository root), with
  renames detected; only when both commits are reachable.
* **params**: added (only in B), removed (only in A), changed (both, different values).
* **packages**: the two exact locks compared by normalized name: added, removed, version changed,
  and the Python version.  A run without a lock (not uv/virtualenv, or made before locks, or whose
  artifact is gone or does not match its tag) is named in ``notes`` instead.
* **entry point, env manager, env hash, source URI**: shown when they differ.

The text view truncates each list to ``LIMIT`` lines with ``... and N more``; ``--json`` has all.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from mlproj.tags import ENV_HASH, ENV_LOCK_SHA256, GIT_COMMIT, GIT_DIRTY, PROJECT_ENTRY_POINT

LIMIT = 15


def _changes(a: dict[str, str], b: dict[str, str]) -> dict[str, Any]:
    return {
        'added': {k: b[k] for k in sorted(b) if k not in a},
        'removed': {k: a[k] for k in sorted(a) if k not in b},
        'changed': {k: [a[k], b[k]] for k in sorted(a) if k in b and a[k] != b[k]},
    }


def _summary(record: Any) -> dict[str, Any]:
    from mlproj.commands.reproduce import _candidate_uris, _env_manager, _subdirectory

    tags = record.tags
    uris = _candidate_uris(tags)
    return {
        'run_id': record.run_id, 'experiment_id': record.experiment_id, 'status': record.status,
        'source': uris[0] if uris else None, 'commit': tags.get(GIT_COMMIT),
        'dirty': tags.get(GIT_DIRTY) == 'true', 'subdirectory': _subdirectory(tags),
        'entry_point': tags.get(PROJECT_ENTRY_POINT), 'env_manager': _env_manager(tags),
        'env_hash': tags.get(ENV_HASH), 'lock_sha256': tags.get(ENV_LOCK_SHA256),
    }


def _lock(tracker: Any, record: Any, label: str, notes: list[str]) -> Any:
    from mlproj.artifacts import read_file
    from mlproj.envs.lock import ARTIFACT_PATH, parse
    from mlproj.errors import MlprojError

    digest = record.tags.get(ENV_LOCK_SHA256)
    if not digest:
        notes.append(f'run {label} recorded no environment lock')
        return None
    try:
        data = read_file(tracker, record.run_id, ARTIFACT_PATH, record.artifact_uri or None)
    except MlprojError as e:
        notes.append(f'the lock of run {label} cannot be read: {e}')
        return None
    if data is None:
        notes.append(f'the lock artifact of run {label} is gone')
        return None
    if hashlib.sha256(data).hexdigest() != digest:
        notes.append(f'the lock artifact of run {label} does not match its tag {ENV_LOCK_SHA256}')
        return None
    try:
        return parse(data, ARTIFACT_PATH)
    except MlprojError as e:
        notes.append(f'the lock of run {label}: {e}')
        return None


def _repositories(summaries: list[dict[str, Any]]) -> list[tuple[Any, str]]:
    """(pygit2 repository, where) candidates: local repositories the runs name, then the clone cache."""
    from mlproj.errors import MlprojError
    from mlproj.source.local import open_repository
    from mlproj.source.uri import parse

    out: list[tuple[Any, str]] = []
    for s in summaries:
        if not s['source']:
            continue
        try:
            parsed = parse(s['source'], os.getcwd())
        except MlprojError:
            continue
        if not parsed.is_remote and os.path.isdir(parsed.url):
            repo = open_repository(Path(parsed.url))
            if repo is not None:
                out.append((repo, parsed.url))
    import pygit2

    from mlproj.source.cache import CloneCache

    for mirror in CloneCache().mirrors():
        try:
            out.append((pygit2.Repository(str(mirror.path)), f'clone cache of {mirror.url}'))
        except pygit2.GitError:
            continue
    return out


def _git(a: dict[str, Any], b: dict[str, Any], notes: list[str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    from mlproj.source.tree import has_commit

    commits: dict[str, Any] = {'a': a['commit'], 'b': b['commit'], 'repository': None, 'ahead': None,
                               'behind': None}
    if not a['commit'] or not b['commit']:
        notes.append('a run has no recorded commit')
        return commits, None
    if a['commit'] == b['commit']:
        commits.update(ahead=0, behind=0)
        return commits, {'subdirectory': b['subdirectory'], 'changed': []}
    try:
        repos = _repositories([a, b])
    except ImportError:
        repos = []
    found = None
    for repo, where in repos:
        if has_commit(repo, a['commit']) and has_commit(repo, b['commit']):
            base = _merge_base(repo, a['commit'], b['commit'])
            if base is not None or not repo.is_shallow:
                found = repo, where, base
                break
            found = found or (repo, where, None)
    if found is None:
        notes.append('no local repository or clone-cache mirror holds both commits')
        return commits, None
    repo, where, base = found
    commits['repository'] = where
    if base is None and repo.is_shallow:
        notes.append(f'commits not counted: {where} holds a shallow history without their common ancestor '
                     '(MLPROJ_GIT_FULL_CLONE=1 keeps whole histories)')
    else:
        ahead, behind = repo.ahead_behind(b['commit'], a['commit'])
        commits.update(ahead=ahead, behind=behind)
    import pygit2

    tree_a, tree_b = (repo.get(c).peel(pygit2.Commit).tree for c in (a['commit'], b['commit']))
    diff = repo.diff(tree_a, tree_b)
    diff.find_similar()
    prefix = b['subdirectory'].strip('/')
    changed = []
    for delta in diff.deltas:
        new, old = delta.new_file.path, delta.old_file.path
        if prefix and not any(p == prefix or p.startswith(prefix + '/') for p in (new, old)):
            continue
        entry = {'status': delta.status_char(), 'path': new}
        if old != new:
            entry['from'] = old
        changed.append(entry)
    return commits, {'subdirectory': prefix, 'changed': changed}


def _merge_base(repo: Any, a: str, b: str) -> Any:
    import pygit2

    try:
        return repo.merge_base(a, b)
    except (pygit2.GitError, ValueError):
        return None


def diff_runs(tracker: Any, run_a: str, run_b: str) -> dict[str, Any]:
    """The differences between two runs as a JSON-ready dict (see the module docstring)."""
    ra, rb = tracker.get_run(run_a), tracker.get_run(run_b)
    a, b = _summary(ra), _summary(rb)
    notes: list[str] = []
    for label, s in (('A', a), ('B', b)):
        if s['dirty']:
            notes.append(f'run {label} was made from a working tree with uncommitted changes')
    commits, files = _git(a, b, notes)
    la, lb = _lock(tracker, ra, 'A', notes), _lock(tracker, rb, 'B', notes)
    packages = None
    if la is not None and lb is not None:
        packages = _changes(la.packages(), lb.packages())
        packages['python'] = [la.python, lb.python] if la.python != lb.python else None
    fields = ('source', 'subdirectory', 'entry_point', 'env_manager', 'env_hash')
    return {
        'a': a, 'b': b, 'commits': commits, 'files': files,
        'params': _changes(dict(ra.params), dict(rb.params)),
        'packages': packages,
        'changed': {k: [a[k], b[k]] for k in fields if a[k] != b[k]},
        'notes': notes,
    }


def _short(sha: str | None) -> str:
    return sha[:12] if sha else '-'


def _limited(lines: list[str]) -> list[str]:
    if len(lines) <= LIMIT:
        return lines
    return lines[:LIMIT] + [f'  ... and {len(lines) - LIMIT} more (--json lists all)']


def render(d: dict[str, Any]) -> str:
    """The one-screen text view of ``diff_runs``."""
    a, b, c = d['a'], d['b'], d['commits']
    out = [f"runs:        A {a['run_id']} ({a['status']})  ->  B {b['run_id']} ({b['status']})"]
    src = a['source'] if a['source'] == b['source'] else f"{a['source']} -> {b['source']}"
    out.append(f'source:      {src}')
    line = f"commits:     {_short(c['a'])}..{_short(c['b'])}"
    if c['a'] == c['b'] and c['a']:
        line += ' (same commit)'
    elif c['ahead'] is not None:
        line += f": {c['ahead']} commit(s) in A..B, {c['behind']} in B..A ({c['repository']})"
    out.append(line)
    for key, label in (('entry_point', 'entry point'), ('env_manager', 'env manager'), ('env_hash', 'env hash'),
                       ('subdirectory', 'subdirectory')):
        if key in d['changed']:
            x, y = d['changed'][key]
            if key == 'env_hash':
                x, y = _short(x), _short(y)
            out.append(f'{label + ":":<12} {x or "-"} -> {y or "-"}')
    files = d['files']
    if files is not None and c['a'] != c['b']:
        where = f" under {files['subdirectory']}/" if files['subdirectory'] else ''
        out.append(f"files:       {len(files['changed'])} changed{where}")
        out += _limited([f"  {f['status']} {f.get('from', '') + ' -> ' if 'from' in f else ''}{f['path']}"
                         for f in files['changed']])
    p = d['params']
    lines = ([f'  {k}: {x} -> {y}' for k, (x, y) in p['changed'].items()]
             + [f'  + {k} = {v}' for k, v in p['added'].items()] + [f'  - {k} = {v}' for k, v in p['removed'].items()])
    out.append(f'params:      {len(lines)} changed' if lines else 'params:      same')
    out += _limited(lines)
    pk = d['packages']
    if pk is not None:
        lines = ([f'  {k}: {x} -> {y}' for k, (x, y) in pk['changed'].items()]
                 + [f'  + {k} {v}' for k, v in pk['added'].items()]
                 + [f'  - {k} {v}' for k, v in pk['removed'].items()])
        locks = f"lock {_short(a['lock_sha256'])} -> {_short(b['lock_sha256'])}"
        if a['lock_sha256'] == b['lock_sha256']:
            out.append(f"packages:    same (lock {_short(a['lock_sha256'])})")
        else:
            out.append(f'packages:    {len(lines)} changed ({locks})')
        if pk['python']:
            out.append(f"  python: {pk['python'][0]} -> {pk['python'][1]}")
        out += _limited(lines)
    for n in d['notes']:
        out.append(f'note: {n}')
    return '\n'.join(out)
