"""mlproj's one cache root: ``MLPROJ_CACHE_DIR``, else ``cache.dir`` of the user config file
(``mlproj.settings``), else ``$XDG_CACHE_HOME/mlproj`` (an absolute ``XDG_CACHE_HOME`` only, as
the XDG spec says), else ``~/.cache/mlproj``; always resolved.

Clone mirrors (``mlproj.source.cache``), environments and interpreters (``mlproj.envs.store``) and
small derived facts (the sqlite fast path's schema head) all live below it.  Stdlib only, cheap to
import: the run path asks for it before anything heavy is loaded.

``FileLock`` is the one inter-process lock of those caches: an exclusive ``flock`` on a lock file,
which the kernel releases when the holder dies, even by SIGKILL.  (The ``filelock`` package does
the same but costs ~0.1 s to import; this is on every run's path.)  Callers turn its ``OSError``
(a read-only, full or foreign-owned directory) and its ``False`` (timed out) into their own
one-line errors.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PATIENCE = 1.0  # seconds a lock is tried quietly before the caller's "waiting for ..." is shown


def cache_root() -> Path:
    from mlproj.settings import value

    explicit = value('cache.dir')
    if explicit:
        return Path(explicit).expanduser().resolve()
    xdg = os.environ.get('XDG_CACHE_HOME')
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / '.cache'
    return (base / 'mlproj').resolve()


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename:
    readers see the old content or the new, never a half-written record.  The temporary file is
    removed when the write fails; the error is the caller's."""
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp')  # not `secrets`: +3 ms
    try:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json_bounded(path: Path, limit: int) -> Any:
    """The JSON document in ``path``, or None when it is missing, unreadable, larger than ``limit``
    bytes or not JSON: a cache record that cannot be trusted is recomputed, never an error."""
    import json

    try:
        with open(path, 'rb') as f:
            raw = f.read(limit + 1)
        if len(raw) > limit:
            return None
        return json.loads(raw)
    except (OSError, ValueError):
        return None


class FileLock:
    """An exclusive ``flock`` on ``path`` (created if missing).  Not reentrant: a second
    ``FileLock`` on the same path, even in the same process, waits for the first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (None: forever, 0: one try); False when it ran out.
        ``OSError`` when the lock file cannot be opened."""
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.fd = fd
                return True
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 0.1)

    def acquire_patiently(self, timeout: float | None, on_wait: Callable[[], None]) -> bool:
        """``acquire(timeout)``, calling ``on_wait()`` once if the lock is still held by someone
        else after ``PATIENCE`` seconds (never when ``timeout`` is 0 or less: one try)."""
        if timeout is not None and timeout <= 0:
            return self.acquire(0)
        first = PATIENCE if timeout is None else min(PATIENCE, timeout)
        if self.acquire(first):
            return True
        on_wait()
        return self.acquire(None if timeout is None else max(0.0, timeout - first))

    def release(self) -> None:
        import fcntl

        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
