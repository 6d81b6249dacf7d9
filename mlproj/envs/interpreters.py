"""Find an installed Python interpreter matching a ``python:`` version spec.

Candidates, without running anything that is already known:

* the interpreter running mlproj;
* pyenv versions (``$PYENV_ROOT/versions/X.Y.Z/bin/python``; the version is the directory name).
  pyenv *shims* are skipped: they only resolve the globally selected version;
* uv-managed Pythons (``$UV_PYTHON_INSTALL_DIR`` or ``$XDG_DATA_HOME/uv/python``,
  ``cpython-X.Y.Z-...``; the version is in the name);
* ``python3.N`` / ``python3`` / ``python`` on PATH (virtualenvs excluded).  Their version is asked
  once and cached in ``<env root>/.interpreters.json`` by (real path, size, mtime).

A spec is ``X``, ``X.Y``, ``X.Y.Z`` (``X.Y.*`` too) or a PEP 440 specifier set (``>=3.10,<3.13``);
the highest matching version wins.  No spec means the version of the interpreter running mlproj
(MLflow uses the launcher's version too).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from mlproj.errors import EnvError

_VERSION_DIR = re.compile(r'^(\d+)\.(\d+)\.(\d+)$')
_UV_DIR = re.compile(r'^cpython-(\d+)\.(\d+)\.(\d+)-')
_EXACT = re.compile(r'^(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\.\*)?$')
_PROBE = ('import sys, platform; sys.stdout.write("%s %d %d %d" % (platform.python_implementation().lower(), '
          'sys.version_info[0], sys.version_info[1], sys.version_info[2]))')
SOURCES = ('launcher', 'pyenv', 'uv', 'path')

Version = tuple[int, int, int]


class Interpreter(NamedTuple):
    path: str                 # absolute, symlinks resolved
    version: Version
    implementation: str       # 'cpython', 'pypy'
    source: str               # one of SOURCES

    @property
    def version_text(self) -> str:
        return '.'.join(map(str, self.version))


def _version(groups: tuple) -> Version:
    major, minor, micro = (int(g) for g in groups)
    return (major, minor, micro)


def _pyenv_candidates() -> list[Interpreter]:
    root = Path(os.environ.get('PYENV_ROOT') or Path.home() / '.pyenv') / 'versions'
    out: list[Interpreter] = []
    try:
        names = os.listdir(root)
    except OSError:
        return out
    for n in names:
        m = _VERSION_DIR.match(n)
        if not m:
            continue
        exe = root / n / 'bin' / 'python'
        if os.path.exists(exe):
            out.append(Interpreter(os.path.realpath(exe), _version(m.groups()), 'cpython', 'pyenv'))
    return out


def uv_python_dir() -> Path:
    explicit = os.environ.get('UV_PYTHON_INSTALL_DIR')
    if explicit:
        return Path(explicit)
    xdg = os.environ.get('XDG_DATA_HOME')
    return (Path(xdg) if xdg else Path.home() / '.local' / 'share') / 'uv' / 'python'


def _uv_candidates() -> list[Interpreter]:
    root = uv_python_dir()
    out: list[Interpreter] = []
    try:
        names = os.listdir(root)
    except OSError:
        return out
    for n in names:
        m = _UV_DIR.match(n)
        if not m or 'freethreaded' in n:
            continue
        exe = root / n / 'bin' / 'python3'
        if os.path.exists(exe):
            out.append(Interpreter(os.path.realpath(exe), _version(m.groups()), 'cpython', 'uv'))
    return out


def _path_executables() -> list[str]:
    names = ['python3', 'python'] + [f'python3.{minor}' for minor in range(6, 16)]
    out: list[str] = []
    for d in os.environ.get('PATH', '').split(os.pathsep):
        if not d or os.path.basename(d.rstrip('/')) == 'shims':  # pyenv/asdf shims
            continue
        if os.path.exists(os.path.join(d, '..', 'pyvenv.cfg')):  # a virtualenv's bin
            continue
        for n in names:
            p = os.path.join(d, n)
            if os.access(p, os.X_OK) and not os.path.isdir(p):
                out.append(os.path.realpath(p))
    return out


class _ProbeCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict = {}
        self.dirty = False
        try:
            with open(path, encoding='utf-8') as f:
                loaded = json.load(f)
            if isinstance(loaded, dict):
                self.data = loaded
        except (OSError, ValueError):
            pass

    def get(self, exe: str) -> tuple[str, Version] | None:
        try:
            st = os.stat(exe)
        except OSError:
            return None
        stamp = [st.st_size, st.st_mtime_ns]
        hit = self.data.get(exe)
        if isinstance(hit, dict) and hit.get('stamp') == stamp:
            return hit['impl'], tuple(hit['version'])  # type: ignore[return-value]
        try:
            out = subprocess.run([exe, '-E', '-s', '-c', _PROBE], capture_output=True, text=True, timeout=20,
                                 stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            return None
        parts = out.stdout.split()
        if out.returncode != 0 or len(parts) != 4:
            self.data[exe] = {'stamp': stamp, 'impl': 'unknown', 'version': [0, 0, 0]}
            self.dirty = True
            return None
        impl, version = parts[0], tuple(int(x) for x in parts[1:])
        self.data[exe] = {'stamp': stamp, 'impl': impl, 'version': list(version)}
        self.dirty = True
        return impl, version  # type: ignore[return-value]

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f'.{self.path.name}.{secrets.token_hex(4)}')
            with open(tmp, 'w', encoding='utf-8') as f:
                json.dump(self.data, f)
            os.replace(tmp, self.path)
        except OSError:
            pass


def launcher() -> Interpreter:
    exe = os.path.realpath(getattr(sys, '_base_executable', None) or sys.executable)
    impl = sys.implementation.name
    return Interpreter(exe, tuple(sys.version_info[:3]), impl, 'launcher')  # type: ignore[arg-type]


def discover(cache_file: Path | None = None, *, probe_path: bool = True) -> list[Interpreter]:
    """Every usable interpreter, deduplicated by real path, in preference order.

    ``probe_path=False`` skips the interpreters on PATH (whose version may need a subprocess).
    """
    from mlproj.cachedir import cache_root

    found: list[Interpreter] = [launcher()]
    found += sorted(_pyenv_candidates(), key=lambda i: i.version, reverse=True)
    found += sorted(_uv_candidates(), key=lambda i: i.version, reverse=True)
    if not probe_path:
        return found
    seen = {i.path for i in found}
    cache = _ProbeCache(cache_file or cache_root() / 'interpreters.json')
    for exe in _path_executables():
        if exe in seen:
            continue
        seen.add(exe)
        probed = cache.get(exe)
        if probed is not None and probed[0] != 'unknown':
            found.append(Interpreter(exe, probed[1], probed[0], 'path'))
    cache.save()
    unique: dict[str, Interpreter] = {}
    for i in found:
        unique.setdefault(i.path, i)
    return list(unique.values())


def matcher(spec: str | None, where: str = '') -> Callable[[Version], bool]:
    """A predicate on (major, minor, micro) for a ``python:`` spec."""
    if spec is None:
        exact = tuple(sys.version_info[:3])
        return lambda v: v == exact
    text = spec.strip()
    m = _EXACT.match(text)
    if m:
        wanted = [int(g) for g in m.groups() if g is not None]
        return lambda v: list(v[:len(wanted)]) == wanted
    if re.match(r'^[<>=!~]', text):
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            specifiers = SpecifierSet(text)
        except InvalidSpecifier:
            raise EnvError(f'invalid python version {spec!r}: expected X.Y, X.Y.Z or a specifier such as '
                           '">=3.10,<3.13"', where) from None
        return lambda v: specifiers.contains('.'.join(map(str, v)), prereleases=True)
    raise EnvError(f'invalid python version {spec!r}: expected X.Y, X.Y.Z or a specifier such as ">=3.10,<3.13"',
                   where)


def is_exact(spec: str | None) -> bool:
    """An X.Y.Z spec: any match is as good as any other, so PATH need not be probed."""
    return spec is None or bool(re.match(r'^\d+\.\d+\.\d+$', spec.strip()))


def find(spec: str | None, where: str = '', candidates: list[Interpreter] | None = None) -> Interpreter | None:
    """The best installed CPython matching ``spec``, or None."""
    ok = matcher(spec, where)
    if candidates is None and is_exact(spec):
        quick = find(spec, where, discover(probe_path=False))
        if quick is not None:
            return quick
    pool = candidates if candidates is not None else discover()
    best: Interpreter | None = None
    for i in pool:
        if i.implementation != 'cpython' or not ok(i.version):
            continue
        if best is None or i.version > best.version:
            best = i
    return best


def describe(candidates: list[Interpreter]) -> str:
    versions = sorted({i.version for i in candidates if i.implementation == 'cpython'})
    return ', '.join('.'.join(map(str, v)) for v in versions) or 'none'
