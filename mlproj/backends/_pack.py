"""Deterministic, content-addressed project archives for remote backends.

``pack(project_dir)`` writes ``<sha256>.tar.gz`` holding the project directory under the single
top-level folder ``project/``.  The same files give the same name on any machine:

* entries are sorted; mtimes, owners and groups are zeroed; modes are normalised to 0644/0755;
  the gzip header carries no name and no timestamp;
* the name is the SHA-256 of the *uncompressed* tar stream, so it does not depend on the zlib
  build that compressed it.

Left out: ``.git`` (directories and submodule files), ``mlruns`` directories, ``mlflow.db``
files, and, when the project lives in a Git work tree, every path Git ignores
(``Repository.path_is_ignored``) unless it is tracked.  A symlink that leaves the project is an
error: it would dangle on the remote machine (and would hand a file outside the project to it).
Files are opened through ``mlproj.safefile`` (regular files inside the project, ``O_NOFOLLOW``,
never blocking); FIFOs, sockets and devices are never packed.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlproj import safefile
from mlproj.errors import SourceError

ARCHIVE_ROOT = 'project'
ALWAYS_EXCLUDED_NAMES = frozenset({'.git', 'mlruns', 'mlflow.db', 'mlflow.db-journal'})


@dataclass(frozen=True)
class Archive:
    path: Path          # the .tar.gz file
    sha256: str         # hash of the uncompressed tar stream (the archive's name)
    size: int           # bytes of the .tar.gz
    files: tuple[str, ...]  # relative paths packed (files and symlinks), sorted

    @property
    def name(self) -> str:
        return f'{self.sha256}.tar.gz'


class _IgnoreRules:
    """Git's view of which paths under ``project_dir`` are ignored (nothing outside a repo)."""

    def __init__(self, project_dir: Path) -> None:
        self._repo: Any = None
        self._prefix = ''
        self._tracked: frozenset[str] = frozenset()
        try:
            import pygit2

            found = pygit2.discover_repository(str(project_dir))
            if found is None:
                return
            repo = pygit2.Repository(found)
            if repo.is_bare or repo.workdir is None:
                return
        except Exception:  # no repository (or an unreadable one): nothing is ignored
            return
        workdir = Path(repo.workdir).resolve()
        try:
            rel = project_dir.resolve().relative_to(workdir)
        except ValueError:
            return
        self._repo = repo
        self._prefix = '' if str(rel) == '.' else rel.as_posix() + '/'
        try:
            self._tracked = frozenset(entry.path for entry in repo.index)
        except Exception:
            self._tracked = frozenset()

    def ignored(self, rel: str, is_dir: bool) -> bool:
        if self._repo is None:
            return False
        path = self._prefix + rel
        if not is_dir and path in self._tracked:
            return False
        if is_dir and any(t.startswith(path + '/') for t in self._tracked):
            return False  # an ignored folder that still holds tracked files is walked
        try:
            return bool(self._repo.path_is_ignored(path + ('/' if is_dir else '')))
        except Exception:
            return False


def _walk(project_dir: Path) -> list[tuple[str, Path]]:
    """(relative posix path, absolute path) of every entry to pack, sorted, dirs included."""
    rules = _IgnoreRules(project_dir)
    root = project_dir.resolve()
    out: list[tuple[str, Path]] = []

    def visit(directory: Path, rel_dir: str) -> None:
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            raise SourceError(f'cannot read project directory: {e.strerror}', str(directory)) from None
        for entry in entries:
            if entry.name in ALWAYS_EXCLUDED_NAMES:
                continue
            rel = f'{rel_dir}{entry.name}'
            path = Path(entry.path)
            if entry.is_symlink():
                if rules.ignored(rel, False):
                    continue
                if not safefile.inside(path, root):
                    raise SourceError(f'symlink {rel!r} points outside the project; it would not exist on '
                                      'the remote machine', str(project_dir))
                out.append((rel, path))
            elif entry.is_dir():
                if rules.ignored(rel, True):
                    continue
                out.append((rel, path))
                visit(path, rel + '/')
            elif entry.is_file():
                if rules.ignored(rel, False):
                    continue
                out.append((rel, path))
            # sockets, fifos and devices are never packed

    visit(root, '')
    return out


def _tarinfo(rel: str, path: Path) -> tarfile.TarInfo:
    st = path.lstat()
    info = tarfile.TarInfo(f'{ARCHIVE_ROOT}/{rel}')
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ''
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        info.mode = 0o777
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = st.st_size
        info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    return info


class _HashingWriter(io.RawIOBase):
    """Feeds the uncompressed tar stream to the hash and to gzip."""

    def __init__(self, gz: gzip.GzipFile) -> None:
        self._gz = gz
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.digest.update(data)
        self._gz.write(data)
        return len(data)


def pack(project_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None) -> Archive:
    """Pack ``project_dir`` into ``<out_dir>/<sha256>.tar.gz`` (a fresh temp dir by default)."""
    project_dir = Path(project_dir)
    entries = _walk(project_dir)
    real_dir = project_dir.resolve()
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix='mlproj-pack-'))
    out.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix='.pack-', suffix='.tar.gz', dir=out)
    try:
        with os.fdopen(fd, 'wb') as raw:
            with gzip.GzipFile(filename='', mode='wb', fileobj=raw, mtime=0, compresslevel=6) as gz:
                writer = _HashingWriter(gz)
                root = tarfile.TarInfo(ARCHIVE_ROOT)
                root.type, root.mode, root.mtime, root.uname, root.gname = tarfile.DIRTYPE, 0o755, 0, '', ''
                with tarfile.open(fileobj=writer, mode='w|', format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                    tar.addfile(root)
                    for rel, path in entries:
                        info = _tarinfo(rel, path)
                        if info.isreg():
                            try:
                                fd, st = safefile.open_regular(path, real_dir, what=f'project file {rel!r}')
                            except safefile.Refused as e:
                                raise SourceError(e.message, str(project_dir)) from None
                            info.size = st.st_size
                            with os.fdopen(fd, 'rb') as f:
                                tar.addfile(info, f)
                        else:
                            tar.addfile(info)
        sha = writer.digest.hexdigest()
        final = out / f'{sha}.tar.gz'
        os.replace(tmp_name, final)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise
    files = tuple(rel for rel, path in entries if not path.is_dir() or path.is_symlink())
    return Archive(final, sha, final.stat().st_size, files)


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()
