"""The run cache: a run's inputs as one key, and the FINISHED run that already has it.

Every run mlproj creates carries the tag ``mlproj.cache_key`` (when its inputs can be named);
``--reuse`` looks for a FINISHED run of the same experiment with the same key (one search
query) and, when there is one, reports it instead of running again.  ``--force`` runs anyway.

The key is the SHA-256 of a canonical JSON document of

* the source: the commit, plus the diff hash of a dirty local tree (``mlproj.source.git.diff_sha256``);
  a directory that is not a Git checkout has no stable identity and never gets a key;
* the ``#subdirectory`` and the entry point name;
* every parameter value as resolved (declared and extra, defaults filled in); a ``path``
  parameter naming a local file or directory is replaced by the SHA-256 of its content (a
  directory: of its sorted relative names and file contents; symlinked directories are not
  followed), so editing the data invalidates the key while moving it does not;
* the environment: the env manager, the env file's repository-relative path and its content
  hash, and the hash of each lock file the environment is built from (``uv.lock``, ...);
* the backend and its backend config (JSON, keys sorted).

A file is read once per process for as long as its inode, size, mtime and ctime stay the same
(a sweep's points share their data files).  Inputs too large to fingerprint (more than
``MAX_FILES`` files or ``MAX_BYTES`` bytes under one ``path`` parameter) leave the run without a
key: it is never reused, and says so.
The key says nothing about what the command reads from elsewhere (the network, the time of day,
files not named by a parameter), nor about packages an unpinned environment resolves to when it
is rebuilt: the environment is named by its spec and lock files, not by the installed set.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mlproj.tags import CACHE_KEY, FINISHED

KEY_VERSION = 1          # bump when the key's document changes: old keys then never match
MAX_FILES = 100_000
MAX_BYTES = 64 * 1024 ** 3


class TooLarge(Exception):
    pass


# file digests of this process, keyed by what identifies the file's content version (a sweep plans
# every point with the same data: each file is read once, not once per point)
_digests: dict[tuple, str] = {}
_MAX_MEMO = 200_000
_RACY_NS = 2_000_000_000


def _sha256_file(path: str, budget: list[int]) -> str:
    import time

    from mlproj.digest import sha256

    h = sha256()
    with open(path, 'rb') as f:
        st = os.fstat(f.fileno())
        ident = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        known = _digests.get(ident)
        if known is not None:
            budget[1] -= st.st_size
            if budget[1] < 0:
                raise TooLarge(path)
            return known
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            budget[1] -= len(chunk)
            if budget[1] < 0:
                raise TooLarge(path)
            h.update(chunk)
    digest = h.hexdigest()
    # a file changed within the last seconds may change again within the same timestamp tick
    # ("racily clean", as Git calls it): such a digest is not remembered
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _RACY_NS:
        if len(_digests) >= _MAX_MEMO:
            _digests.clear()
        _digests[ident] = digest
    return digest


def fingerprint_path(path: str) -> str | None:
    """``file:<sha256>`` / ``dir:<sha256>`` of a local path's content, None when it does not exist."""
    from mlproj.digest import sha256

    budget = [MAX_FILES, MAX_BYTES]
    if os.path.isfile(path):
        return 'file:' + _sha256_file(path, budget)
    if not os.path.isdir(path):
        return None
    h = sha256()
    for top, dirs, files in os.walk(path):  # symlinked directories are listed, not followed
        dirs.sort()
        rel_top = os.path.relpath(top, path)
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(top, d))]):
            full = os.path.join(top, name)
            budget[0] -= 1
            if budget[0] < 0:
                raise TooLarge(path)
            rel = os.path.normpath(os.path.join(rel_top, name))
            if os.path.islink(full) and os.path.isdir(full):
                entry = 'link:' + os.readlink(full)
            elif os.path.isfile(full):
                entry = _sha256_file(full, budget)
            else:
                entry = 'special'
            h.update(json.dumps([rel, entry]).encode('utf-8', 'surrogateescape') + b'\n')
    return 'dir:' + h.hexdigest()


def key_document(plan: Any) -> dict[str, Any] | None:
    """What the key hashes (None: the run cannot be named). Raises TooLarge."""
    src = plan.source
    if not src.commit:
        return None
    from mlproj import safefile

    params: dict[str, str] = {}
    declared = plan.entry_point.parameters
    for name, value in plan.params.all().items():
        p = declared.get(name)
        if p is not None and p.type == 'path' and os.path.isabs(value):
            fp = fingerprint_path(value)
            params[name] = fp if fp is not None else f'missing:{value}'
        else:
            params[name] = value
    env = plan.project.env
    env_doc: dict[str, Any] = {'manager': plan.env_manager, 'kind': getattr(env, 'kind', None)}
    env_path = getattr(env, 'path', None)
    if env_path is not None and plan.env_manager != 'local':
        path = Path(env_path)
        try:
            env_doc['file'] = os.path.relpath(path, src.root)
            env_doc['sha256'] = safefile.sha256(path, src.root, 'environment file')
        except Exception:  # an unreadable env file fails the run later, with its own message
            env_doc['sha256'] = None
    if plan.env_manager in ('uv', 'virtualenv'):
        try:
            from mlproj.envs.uv import lock_files

            env_doc['locks'] = lock_files(src.project_dir, src.root)
        except Exception:
            env_doc['locks'] = None
    request = plan.request
    return {
        'v': KEY_VERSION,
        'commit': src.commit,
        'diff': src.diff_hash if src.dirty else None,
        'subdirectory': src.subdirectory,
        'entry_point': plan.entry_point.name,
        'params': dict(sorted(params.items())),
        'env': env_doc,
        'backend': request.backend,
        'backend_config': request.backend_config or {},
    }


def cache_key(plan: Any) -> tuple[str | None, str | None]:
    """(key, why there is none)."""
    from mlproj.digest import sha256

    try:
        doc = key_document(plan)
    except TooLarge as e:
        return None, f'a path parameter is too large to fingerprint ({e})'
    except OSError as e:
        return None, f'a path parameter cannot be read ({e.strerror}: {e.filename})'
    if doc is None:
        return None, 'the project is not a Git checkout (no commit names its content)'
    text = json.dumps(doc, sort_keys=True, separators=(',', ':'), default=str)
    return sha256(text.encode('utf-8', 'surrogateescape')).hexdigest(), None


def find_reusable(tracker: Any, experiment_id: str, key: str) -> Any:
    """The newest FINISHED run of the experiment carrying ``key``, or None."""
    found = tracker.search_with_tag([str(experiment_id)], CACHE_KEY, key, FINISHED)
    return found[0] if found else None


def describe_end(record: Any) -> str:
    import time

    if not record.end_time:
        return 'finished'
    when = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(record.end_time / 1000))
    return f'finished {when}'
