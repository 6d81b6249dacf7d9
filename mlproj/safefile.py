"""The one way mlproj reads a file on behalf of a project.

A project is untrusted (a pull request, a cloned repository): its ``MLproject``, env files,
``-r`` / ``-c`` requirement files, ``uv.lock``, ``pyproject.toml``, ``.dockerignore`` and the
files mlproj hashes or packs are read only through this module, which

* resolves the path (``realpath``: symlinks at every component, ``..``) and refuses anything
  that lands outside ``root``, the checkout / repository root (not the project subfolder: a
  ``python_env: ../python_env.yaml`` inside the same repository is allowed);
* refuses what is not a regular file (FIFO, character or block device, socket, directory) from
  ``stat`` alone, then opens with ``O_NONBLOCK | O_NOFOLLOW | O_NOCTTY`` and checks ``fstat``
  again (same inode, still regular), so nothing can block or swap the file in between;
* bounds the size before anything is parsed: ``MLPROJ_MAX_FILE_BYTES`` (default 1 MiB) for the
  files mlproj parses (MLproject, env and requirement files, ``.dockerignore``, ``pyproject.toml``)
  and ``MLPROJ_MAX_LOCK_BYTES`` (default 64 MiB) for ``uv.lock``; the size is checked on ``fstat``
  and again while reading (a file that grows, or a procfs-like file reporting size 0).

A refusal raises ``Refused`` whose message names the path and the reason, never a byte of the
file (nor the target of a symlink that leaves the root): callers turn it into a finding or a
one-line error.  ``root=None`` is only used for files outside any project (a local package a
``python_env`` names by absolute path, which mlproj hashes but never prints).

Not covered: a local attacker racing mlproj on the same machine between ``realpath`` and
``open`` (the last component is opened with ``O_NOFOLLOW`` and compared by inode, the parents
are not re-walked with ``openat``).  The threat is the repository's content, not a concurrent
local user.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

DEFAULT_MAX_BYTES = 1 << 20
MAX_BYTES_ENV = 'MLPROJ_MAX_FILE_BYTES'
DEFAULT_MAX_LOCK_BYTES = 64 << 20
MAX_LOCK_BYTES_ENV = 'MLPROJ_MAX_LOCK_BYTES'

_OPEN_FLAGS = (os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0) | getattr(os, 'O_NOFOLLOW', 0)
               | getattr(os, 'O_NOCTTY', 0) | getattr(os, 'O_CLOEXEC', 0))
_KINDS = ((stat.S_ISDIR, 'a directory'), (stat.S_ISFIFO, 'a FIFO (named pipe)'), (stat.S_ISCHR, 'a character device'),
          (stat.S_ISBLK, 'a block device'), (stat.S_ISSOCK, 'a socket'))


class Refused(Exception):
    """A file mlproj will not read.  ``message`` never contains any of the file's content."""

    def __init__(self, message: str, path: str | os.PathLike[str], *, missing: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.path = str(path)
        self.missing = missing  # the file does not exist (callers report MLP011 & co.)

    def __str__(self) -> str:
        return self.message


def _limit(env: str, default: int) -> int:
    from mlproj.settings import env_value

    value = env_value(env)  # an int, or the table's default when unset or not a (decimal, ASCII) integer
    return value if value > 0 else default


def max_bytes() -> int:
    """Size bound of MLproject, env and requirement files (``MLPROJ_MAX_FILE_BYTES``, default 1 MiB)."""
    return _limit(MAX_BYTES_ENV, DEFAULT_MAX_BYTES)


def max_lock_bytes() -> int:
    """Size bound of ``uv.lock`` (``MLPROJ_MAX_LOCK_BYTES``, default 64 MiB)."""
    return _limit(MAX_LOCK_BYTES_ENV, DEFAULT_MAX_LOCK_BYTES)


def find_root(start: str | os.PathLike[str]) -> Path:
    """The repository root for files found under ``start``: the nearest directory at or above it
    holding ``.git``, else ``start`` itself (a plain folder is its own root)."""
    here = Path(os.path.realpath(start))
    if not here.is_dir():
        here = here.parent
    for p in (here, *here.parents):
        if os.path.lexists(p / '.git'):
            return p
    return here


def inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether the real path of ``path`` is ``root`` or below it (both resolved)."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def resolve(path: str | os.PathLike[str], root: str | os.PathLike[str] | None, what: str = 'file') -> Path:
    """The real path of ``path``, refused when it does not exist or leaves ``root``."""
    if '\x00' in os.fspath(path):
        raise Refused(f'{what} name contains a NUL byte', repr(os.fspath(path)))
    try:
        real = Path(path).resolve(strict=True)
    except FileNotFoundError:
        if os.path.lexists(path):  # a dangling symlink: where it points is not said
            raise Refused(f'{what} is a symlink to nothing', path, missing=True) from None
        raise Refused(f'{what} does not exist', path, missing=True) from None
    except RuntimeError:  # symlink loop (Python < 3.13)
        raise Refused(f'{what} is a symlink loop', path) from None
    except OSError as e:
        raise Refused(f'{what} cannot be resolved: {e.strerror}', path) from None
    if root is not None and not inside(real, root):
        raise Refused(f'{what} is refused: it resolves outside the repository root (through a symlink or ..)',
                      path)
    return real


def _kind(mode: int) -> str | None:
    for test, name in _KINDS:
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else 'not a regular file'


def open_regular(path: str | os.PathLike[str], root: str | os.PathLike[str] | None,
                 what: str = 'file') -> tuple[int, os.stat_result]:
    """An fd of the regular file ``path`` (inside ``root``) and its ``fstat``; never blocks."""
    real = resolve(path, root, what)
    try:
        st = os.stat(real)
    except OSError as e:
        raise Refused(f'cannot read {what}: {e.strerror}', path) from None
    kind = _kind(st.st_mode)
    if kind is not None:
        raise Refused(f'{what} is refused: it is {kind}, not a regular file', path)
    try:
        fd = os.open(real, _OPEN_FLAGS)
    except OSError as e:
        raise Refused(f'cannot read {what}: {e.strerror}', path) from None
    try:
        st2 = os.fstat(fd)
        if not stat.S_ISREG(st2.st_mode) or (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino):
            raise Refused(f'{what} is refused: it changed while being opened', path)
        if hasattr(os, 'set_blocking'):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st2


def read_bytes(path: str | os.PathLike[str], root: str | os.PathLike[str] | None, *, limit: int | None = None,
               what: str = 'file', limit_env: str = MAX_BYTES_ENV) -> bytes:
    """The content of ``path`` (a regular file inside ``root``), at most ``limit`` bytes or refused."""
    limit = max_bytes() if limit is None else limit
    fd, st = open_regular(path, root, what)
    try:
        if st.st_size > limit:
            raise Refused(f'{what} is refused: {st.st_size} bytes, over the limit of {limit} ({limit_env})', path)
        chunks, total = [], 0
        while True:
            try:
                chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            except OSError as e:
                raise Refused(f'cannot read {what}: {e.strerror}', path) from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise Refused(f'{what} is refused: over the limit of {limit} bytes ({limit_env})', path)
        return b''.join(chunks)
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike[str], root: str | os.PathLike[str] | None, *, limit: int | None = None,
              what: str = 'file', errors: str = 'strict') -> str:
    """``read_bytes`` decoded as UTF-8 (a BOM is dropped); ``UnicodeDecodeError`` propagates."""
    return read_bytes(path, root, limit=limit, what=what).decode('utf-8-sig', errors)


def is_regular(path: str | os.PathLike[str], root: str | os.PathLike[str] | None) -> bool:
    """Whether ``path`` exists as a regular file inside ``root`` (symlinks resolved), without opening it."""
    try:
        real = resolve(path, root)
        return stat.S_ISREG(os.stat(real).st_mode)
    except (Refused, OSError):
        return False


def sha256(path: str | os.PathLike[str], root: str | os.PathLike[str] | None, what: str = 'file') -> str:
    """SHA-256 of a regular file (no size bound: the content is hashed, never parsed or shown)."""
    from mlproj import digest as digests  # this function's own name is sha256

    fd, _ = open_regular(path, root, what)
    digest = digests.sha256()
    try:
        while True:
            block = os.read(fd, 1 << 20)
            if not block:
                break
            digest.update(block)
    finally:
        os.close(fd)
    return digest.hexdigest()


def copy_to(path: str | os.PathLike[str], root: str | os.PathLike[str] | None, dest: str | os.PathLike[str], *,
            limit: int | None = None, what: str = 'file', limit_env: str = MAX_BYTES_ENV) -> None:
    """Write the content of ``path`` (read as ``read_bytes`` does) to ``dest``, a fresh file."""
    data = read_bytes(path, root, limit=limit, what=what, limit_env=limit_env)
    with open(dest, 'wb') as f:
        f.write(data)
