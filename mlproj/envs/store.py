"""The environment store: content-hashed names, one lock per name, atomic publication.

Layout under ``MLPROJ_ENV_ROOT`` (default ``mlproj.cachedir.cache_root() / 'envs'``)::

    uv-<hash>            -> .store/uv-<hash>.<token>   (symlink: the published, ready environment)
    .store/uv-<hash>.<token>/                          (the environment itself; never moved)
        bin/ lib/ pyvenv.cfg ...
        .mlproj-env.json                               (marker: written last, before publication)
    .locks/uv-<hash>.lock                              (one lock per name: one builder at a time)
    .records/conda-....json                            (conda envs and docker images mlproj made)

Virtual environments are not relocatable (``bin/activate``, script shebangs and some ``.pth``
files hold the absolute path), so an environment is never renamed after it is built.  It is built
in a private directory that is already its final resting place, and *published* by atomically
renaming a symlink onto the name.  Readers only follow published names, so they see either
nothing or a complete environment; a build that dies (even by SIGKILL) leaves an unpublished
directory that the next builder of that name removes while holding the lock.

Reusing a ready environment costs two ``stat`` calls and no subprocess.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from mlproj.cachedir import FileLock, cache_root
from mlproj.digest import sha256
from mlproj.errors import EnvError

MARKER = '.mlproj-env.json'
STORE = '.store'
LOCKS = '.locks'
RECORDS = '.records'
FORMAT = 1  # bump when the layout of built environments changes


def env_root() -> Path:
    from mlproj.settings import env_value

    explicit = env_value('MLPROJ_ENV_ROOT')
    return Path(explicit) if explicit else cache_root() / 'envs'


def content_hash(payload: Any) -> str:
    """sha256 of a canonical JSON rendering of ``payload``."""
    text = json.dumps(payload, sort_keys=True, separators=(',', ':'), ensure_ascii=False)
    return sha256(text.encode('utf-8')).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One environment known to the store (for ``mlproj env list`` / ``prune``)."""
    name: str
    path: Path
    meta: dict
    ready: bool
    last_used: float


class EnvStore:
    """The environment store below ``root`` (``env_root()``): lookup, locked builds, publication."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or env_root()

    # -- fast path --------------------------------------------------------------------------
    def lookup(self, name: str, probe: str = 'bin/python') -> Path | None:
        """The ready environment ``name``, or None.  Only ``stat`` calls; no lock, no subprocess.

        ``probe`` is a file that must exist inside the environment (followed through symlinks,
        so a venv whose base interpreter was uninstalled counts as broken).
        """
        link = self.root / name
        marker = link / MARKER
        try:
            os.stat(marker)
            if probe:
                os.stat(link / probe)
        except OSError:
            return None
        try:
            os.utime(marker)  # last use, for `mlproj env prune --older-than`
        except OSError:
            pass
        return Path(os.path.realpath(link))

    # -- building ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self, name: str, log: TextIO | None = None) -> Iterator[None]:
        """Hold the per-name lock (blocking; says so once when another process holds it)."""
        locks = self.root / LOCKS
        try:
            locks.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise EnvError(f'cannot create the environment store: {e.strerror}', str(self.root)) from None
        lock = FileLock(locks / f'{name}.lock')

        def waiting() -> None:
            print(f'=== Waiting for another mlproj process to finish building environment {name} ===',
                  file=log or sys.stderr, flush=True)

        with _store_writes(lock.path.parent):
            lock.acquire_patiently(None, waiting)
        try:
            yield
        finally:
            lock.release()

    def ensure(self, name: str, build: Callable[[Path], dict], *, probe: str = 'bin/python',
               log: TextIO | None = None) -> tuple[Path, bool]:
        """Return (environment dir, built_now).  ``build(target)`` fills ``target`` and returns
        metadata for the marker; it runs at most once per name across concurrent processes."""
        ready = self.lookup(name, probe)
        if ready is not None:
            return ready, False
        with self.locked(name, log):
            ready = self.lookup(name, probe)  # built by another process while we waited
            if ready is not None:
                return ready, False
            self._remove_unpublished(name)
            store = self.root / STORE
            target = store / f'{name}.{secrets.token_hex(4)}'
            try:
                store.mkdir(parents=True, exist_ok=True)
                target.mkdir()
            except OSError as e:
                raise EnvError(f'cannot write the environment store: {e.strerror}; set MLPROJ_CACHE_DIR or '
                               'MLPROJ_ENV_ROOT to a writable directory', str(store)) from None
            try:
                meta = dict(build(target))
                meta.setdefault('name', name)
                meta['format'] = FORMAT
                meta['created'] = time.time()
                _write_json(target / MARKER, meta)
                self._publish(name, target)
            except BaseException:
                shutil.rmtree(target, ignore_errors=True)
                raise
            return Path(os.path.realpath(self.root / name)), True

    def _publish(self, name: str, target: Path) -> None:
        link = self.root / name
        old = os.path.realpath(link) if os.path.islink(link) else None
        tmp = self.root / f'.{name}.{secrets.token_hex(4)}.link'
        os.symlink(os.path.relpath(target, self.root), tmp)
        if link.is_dir() and not link.is_symlink():  # a plain directory in the way (not ours)
            shutil.rmtree(link, ignore_errors=True)
        os.replace(tmp, link)
        if old and old != str(target):
            shutil.rmtree(old, ignore_errors=True)  # a broken predecessor

    def _remove_unpublished(self, name: str) -> None:
        """Remove directories of ``name`` that were never published (crashed builds).  Caller holds the lock."""
        store = self.root / STORE
        current = os.path.realpath(self.root / name) if os.path.islink(self.root / name) else None
        try:
            entries = list(os.scandir(store))
        except OSError:
            return
        for e in entries:
            if e.name.startswith(name + '.') and e.path != current:
                shutil.rmtree(e.path, ignore_errors=True)

    # -- records of things living outside the store (conda envs, docker images) -------------
    def write_record(self, name: str, meta: dict) -> None:
        records = self.root / RECORDS
        try:
            records.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise EnvError(f'cannot write the environment store: {e.strerror}', str(records)) from None
        meta = dict(meta, name=name, format=FORMAT, kind='record')
        meta.setdefault('created', time.time())
        _write_json(records / f'{name}.json', meta)

    def read_record(self, name: str) -> dict | None:
        path = self.root / RECORDS / f'{name}.json'
        try:
            with open(path, encoding='utf-8') as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None
        try:
            os.utime(path)
        except OSError:
            pass
        return data if isinstance(data, dict) else None

    def remove_record(self, name: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.root / RECORDS / f'{name}.json')

    # -- listing and pruning ----------------------------------------------------------------
    def entries(self) -> list[Entry]:
        out: list[Entry] = []
        try:
            names = sorted(os.listdir(self.root))
        except OSError:
            return out
        published: set[str] = set()
        for n in names:
            if n.startswith('.'):
                continue
            link = self.root / n
            meta = _read_json(link / MARKER)
            real = os.path.realpath(link)
            published.add(real)
            out.append(Entry(n, Path(real), meta or {}, meta is not None, _mtime(link / MARKER)))
        try:
            stored = sorted(os.scandir(self.root / STORE), key=lambda e: e.name)
        except OSError:
            stored = []
        for e in stored:
            if e.path not in published:
                name = e.name.rsplit('.', 1)[0]
                out.append(Entry(name, Path(e.path), _read_json(Path(e.path) / MARKER) or {}, False,
                                 _mtime(Path(e.path))))
        try:
            records = sorted(os.scandir(self.root / RECORDS), key=lambda e: e.name)
        except OSError:
            records = []
        for e in records:
            if e.name.endswith('.json'):
                meta = _read_json(Path(e.path)) or {}
                out.append(Entry(e.name[:-5], Path(meta.get('path') or e.path), meta, True, _mtime(Path(e.path))))
        return out

    def remove(self, entry: Entry) -> bool:
        """Remove one entry unless someone holds its lock (a build in progress).  True if removed."""
        (self.root / LOCKS).mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.root / LOCKS / f'{entry.name}.lock')
        with _store_writes(lock.path.parent):
            if not lock.acquire(timeout=0):
                return False
        try:
            link = self.root / entry.name
            if entry.meta.get('kind') == 'record':
                self.remove_record(entry.name)
                return True
            if os.path.islink(link) and os.path.realpath(link) == str(entry.path):
                os.unlink(link)
            shutil.rmtree(entry.path, ignore_errors=True)
            return True
        finally:
            lock.release()


@contextlib.contextmanager
def _store_writes(where: Path) -> Iterator[None]:
    """A lock file that cannot be opened (read-only or foreign-owned store) is a one-line EnvError."""
    try:
        yield
    except OSError as e:
        raise EnvError(f'cannot write the environment store: {e.strerror}; set MLPROJ_CACHE_DIR or '
                       'MLPROJ_ENV_ROOT to a writable directory', str(where)) from None


def _write_json(path: Path, data: dict) -> None:
    from mlproj.cachedir import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True))


def _read_json(path: Path) -> dict | None:
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0
