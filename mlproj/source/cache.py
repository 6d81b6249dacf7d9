"""The clone cache: one bare mirror per remote, a file lock per mirror, run checkouts.

Layout under ``mlproj.cachedir.cache_root()`` (``MLPROJ_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlproj``,
else ``~/.cache/mlproj``)::

    git/<host>-<name>-<hash>/          bare mirror (refs/heads/*, refs/tags/*, HEAD = remote HEAD)
    git/<host>-<name>-<hash>/mlproj-mirror.json   url (no credentials), created, last_used, last_fetch
    git/<host>-<name>-<hash>.lock      file lock held while fetching / exporting
    checkouts/<sha12>-<random>/        one Git working tree per run (removed after the run); its
                                       .git/objects/info/alternates borrows the mirror's objects
    checkouts/<sha12>-<random>.json    owner pid, keep flag, source

A mirror is created in a temporary sibling directory and renamed into place only once its first
fetch has completed, so a killed first clone leaves nothing that looks valid.  Later fetches
update refs one by one through libgit2's lock files after the pack is complete; stale ``*.lock``
files and partial packs left by a killed fetch are removed the next time the mirror lock is held.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlproj.cachedir import (
    FileLock,
    cache_root,
    write_text_atomic,
)
from mlproj.errors import SourceError

META = 'mlproj-mirror.json'
DEFAULT_LOCK_TIMEOUT = 600.0
_PACK_FILE = re.compile(r'^pack-[0-9a-f]{40,64}\.(pack|idx|rev|keep|bitmap|promisor|mtimes)$')


def mirror_name(url: str) -> str:
    """A readable, filesystem-safe directory name for the mirror of ``url`` (no credentials)."""
    digest = hashlib.sha256(url.encode('utf-8', 'surrogateescape')).hexdigest()[:16]
    stem = url.split('://', 1)[-1]
    stem = stem.rsplit('@', 1)[-1] if '@' in stem.split('/', 1)[0] else stem
    host = re.split(r'[/:]', stem, maxsplit=1)[0]
    name = stem.rstrip('/').rsplit('/', 1)[-1].rsplit(':', 1)[-1]
    name = name[:-4] if name.endswith('.git') else name
    readable = re.sub(r'[^A-Za-z0-9._-]+', '_', f'{host}-{name}').strip('._-')[:60] or 'repo'
    return f'{readable}-{digest}'


def _now() -> float:
    return time.time()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def rmtree(path: Path) -> None:
    """Remove a tree even when the run made parts of it read-only."""
    def onerror(func: Any, p: str, exc: Any) -> None:
        try:
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            os.chmod(p, stat.S_IRWXU)
            func(p)
        except OSError:
            pass

    if os.path.lexists(path):
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=onerror)
        else:  # pragma: no cover - python < 3.12
            shutil.rmtree(path, onerror=onerror)


def dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


@dataclass
class Mirror:
    url: str          # credential-free URL: the key of the mirror
    path: Path

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + '.lock')

    @property
    def meta_path(self) -> Path:
        return self.path / META

    def is_valid(self) -> bool:
        return (self.path / 'HEAD').is_file() and self.meta_path.is_file()

    def meta(self) -> dict[str, Any]:
        return _read_json(self.meta_path) or {}

    def touch(self, **fields: Any) -> None:
        data = self.meta()
        data.update(url=self.url, last_used=_now(), **fields)
        data.setdefault('created', _now())
        _write_json(self.meta_path, data)

    @contextlib.contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        with lock_file(self.lock_path, self.url, timeout):
            yield

    def new_staging_dir(self) -> Path:
        with _cache_writes(self.path.parent):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=self.path.name + '.tmp-', dir=self.path.parent))

    def install(self, staging: Path) -> None:
        """Atomically put a freshly fetched mirror in place (caller holds the lock)."""
        if os.path.lexists(self.path):
            rmtree(self.path)
        os.rename(staging, self.path)

    def clean_stale(self) -> None:
        """Remove leftovers of killed fetches (caller holds the lock, so nothing is live)."""
        parent = self.path.parent
        if parent.is_dir():
            for entry in parent.iterdir():
                if entry.name.startswith(self.path.name + '.tmp-'):
                    rmtree(entry)
        if not self.path.is_dir():
            return
        if not self.is_valid():
            rmtree(self.path)
            return
        stale = [p for p in self.path.iterdir() if p.name.endswith('.lock')]
        refs = self.path / 'refs'
        if refs.is_dir():
            stale += [p for p in refs.rglob('*.lock')]
        for p in stale:
            with contextlib.suppress(OSError):
                p.unlink()
        pack_dir = self.path / 'objects' / 'pack'
        if pack_dir.is_dir():
            for entry in pack_dir.iterdir():
                if entry.is_file() and not _PACK_FILE.match(entry.name):
                    with contextlib.suppress(OSError):
                        entry.unlink()


@contextlib.contextmanager
def _cache_writes(where: Path) -> Iterator[None]:
    """A read-only, full or foreign-owned cache directory is a one-line SourceError."""
    try:
        yield
    except OSError as e:
        raise SourceError(f'cannot write the clone cache: {e.strerror or e}; set MLPROJ_CACHE_DIR to a '
                          'writable directory', str(where)) from None


@contextlib.contextmanager
def lock_file(path: Path, what: str, timeout: float | None = None) -> Iterator[None]:
    if timeout is None:
        from mlproj.settings import env_value

        timeout = float(env_value('MLPROJ_LOCK_TIMEOUT'))
    with _cache_writes(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)

    def waiting() -> None:
        print(f'mlproj: waiting for another mlproj process using the cache of {what}', file=sys.stderr)

    with _cache_writes(path.parent):
        acquired = lock.acquire_patiently(timeout, waiting)
    if not acquired:
        if timeout <= 0:
            raise SourceError('the cache entry is in use', str(path))
        raise SourceError(f'timed out after {timeout:.0f}s waiting for the cache lock', str(path))
    try:
        yield
    finally:
        lock.release()


class CloneCache:
    """The clone cache below ``root``: its mirrors (``git/``) and run checkouts (``checkouts/``)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or cache_root()

    @property
    def git_dir(self) -> Path:
        return self.root / 'git'

    @property
    def checkouts_dir(self) -> Path:
        return self.root / 'checkouts'

    def mirror(self, url: str) -> Mirror:
        return Mirror(url, self.git_dir / mirror_name(url))

    def mirrors(self) -> list[Mirror]:
        if not self.git_dir.is_dir():
            return []
        out = []
        for entry in sorted(self.git_dir.iterdir()):
            if entry.is_dir() and (entry / META).is_file():
                meta = _read_json(entry / META) or {}
                out.append(Mirror(str(meta.get('url', '?')), entry))
        return out

    # -- checkouts ------------------------------------------------------------------------
    def new_checkout(self, commit: str, source: str, keep: bool) -> Path:
        with _cache_writes(self.checkouts_dir):
            self.checkouts_dir.mkdir(parents=True, exist_ok=True)
            path = Path(tempfile.mkdtemp(prefix=f'{commit[:12]}-', dir=self.checkouts_dir))
            _write_json(path.with_name(path.name + '.json'),
                        {'pid': os.getpid(), 'keep': keep, 'source': source, 'commit': commit, 'created': _now()})
        return path

    def remove_checkout(self, path: Path) -> None:
        rmtree(path)
        with contextlib.suppress(OSError):
            os.unlink(path.with_name(path.name + '.json'))

    def checkouts(self) -> list[tuple[Path, dict[str, Any]]]:
        if not self.checkouts_dir.is_dir():
            return []
        out = []
        for entry in sorted(self.checkouts_dir.iterdir()):
            if entry.is_dir():
                out.append((entry, _read_json(entry.with_name(entry.name + '.json')) or {}))
        return out

    # -- pruning --------------------------------------------------------------------------
    def prune(self, older_than: float | None = None) -> list[str]:
        """Remove mirrors unused for ``older_than`` seconds (all when None) and abandoned checkouts."""
        removed: list[str] = []
        cutoff = _now() - older_than if older_than is not None else None
        # a checkout borrows its mirror's objects (alternates): keep the mirrors of the checkouts
        # this prune keeps (live runs, and kept checkouts younger than the cutoff)
        borrowed = {meta.get('source') for path, meta in self.checkouts()
                    if (_pid_alive(meta.get('pid')) and not meta.get('keep'))
                    or (cutoff is not None and float(meta.get('created') or _mtime(path)) > cutoff)}
        for mirror in self.mirrors():
            last = float(mirror.meta().get('last_used') or 0)
            if cutoff is not None and last > cutoff:
                continue
            if mirror.url in borrowed:
                continue
            try:
                with mirror.lock(timeout=0.0):
                    rmtree(mirror.path)
            except SourceError:
                continue  # in use right now
            with contextlib.suppress(OSError):
                os.unlink(mirror.lock_path)
            removed.append(mirror.url)
        for path, meta in self.checkouts():
            if _pid_alive(meta.get('pid')) and not meta.get('keep'):
                continue
            created = float(meta.get('created') or _mtime(path))
            if cutoff is not None and created > cutoff:
                continue
            self.remove_checkout(path)
            removed.append(str(path))
        if self.git_dir.is_dir():  # stale staging dirs of killed first clones
            for entry in self.git_dir.iterdir():
                if '.tmp-' in entry.name and (cutoff is None or _mtime(entry) < cutoff):
                    name = entry.name.split('.tmp-', 1)[0]
                    try:
                        with lock_file(self.git_dir / (name + '.lock'), name, timeout=0.0):
                            rmtree(entry)
                    except SourceError:
                        continue
        return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``12h``, ``30d``, ``2w`` (a bare number means days) -> seconds."""
    m = re.fullmatch(r'\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*', text or '')
    if not m:
        from mlproj.errors import BadArgumentError

        raise BadArgumentError(f'invalid duration {text!r}: use e.g. 12h, 30d, 2w')
    value, unit = float(m.group(1)), m.group(2) or 'd'
    return value * {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}[unit]
