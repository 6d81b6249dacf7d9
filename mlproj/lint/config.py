"""``mlproj lint`` configuration: ``[tool.mlproj.lint]`` in pyproject.toml, then command-line flags.

    [tool.mlproj.lint]
    select = ["MLP0"]            # ids, names or id prefixes; default: every rule
    ignore = ["unused-param"]    # removed from the selection
    fail-on = "error"            # "warning": warnings fail the run too (`strict = true` says the same)
    exclude = [".venv", ...]     # replaces the default excludes (DEFAULT_EXCLUDE)
    extend-exclude = ["tests/fixtures/"]  # added to them; usually what you want
    respect-gitignore = true     # skip what .gitignore files ignore when walking a directory
    force-exclude = false        # apply the excludes to files named on the command line too
    severity = { MLP016 = "error" }  # per-rule severity override

Exclusion follows ruff's conventions: a pattern is a glob; one without ``/`` matches a file or
directory name at any depth (``.venv``, ``*.bak``), one with ``/`` matches the path relative to the
directory of the pyproject.toml (the current directory without one), and a trailing ``/`` matches a
directory and everything below it.  Files named on the command line are always linted unless
``force-exclude`` is set, which is what the pre-commit hook passes (pre-commit names every file).
"""
from __future__ import annotations

import fnmatch
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlproj.rules import RULES

KEYS = ('select', 'ignore', 'strict', 'fail-on', 'exclude', 'extend-exclude', 'respect-gitignore',
        'force-exclude', 'severity')
SEVERITIES = ('error', 'warning')
FAIL_ON = ('error', 'warning')
# Directories and names never worth linting (ruff's list, minus what cannot hold an MLproject).
DEFAULT_EXCLUDE = ('.git', '.hg', '.svn', '.bzr', '.venv', 'venv', '.tox', '.nox', 'node_modules', '__pycache__',
                   '.mypy_cache', '.pytest_cache', '.ruff_cache', 'site-packages', '.eggs', 'build', 'dist',
                   '_build', 'buck-out', '.direnv', '__pypackages__')


class ConfigError(ValueError):
    """A bad selector or configuration value: a usage error (exit 2)."""


@dataclass(frozen=True)
class LintConfig:
    select: frozenset[str] = field(default_factory=lambda: frozenset(RULES))
    strict: bool = False  # fail on warnings too (fail-on = "warning")
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    severity: dict[str, str] = field(default_factory=dict)
    source: str | None = None  # the pyproject.toml it came from
    root: Path | None = None   # patterns with a '/' are relative to this (the pyproject's directory)
    respect_gitignore: bool = True
    force_exclude: bool = False
    exit_zero: bool = False

    def enabled(self, rule: str) -> bool:
        return rule in self.select

    def severity_of(self, rule: str) -> str:
        return self.severity.get(rule) or RULES[rule].severity

    def excluded(self, relpath: str, *, is_dir: bool = False) -> bool:
        """Whether a path (relative to ``root``) matches an exclude pattern, or lies below a match."""
        rel = relpath.replace(os.sep, '/').strip('/')
        if not rel or rel == '.':
            return False
        parts = rel.split('/')
        for pat in self.exclude:
            dir_only = pat.endswith('/')
            pat = pat.strip('/')
            if '/' in pat:
                # anchored: the path itself, or one of its parent directories
                for i in range(len(parts), 0, -1):
                    if i == len(parts) and dir_only and not is_dir:
                        continue
                    if fnmatch.fnmatchcase('/'.join(parts[:i]), pat):
                        return True
            else:
                for i, name in enumerate(parts):
                    last = i == len(parts) - 1
                    if last and dir_only and not is_dir:
                        continue
                    if fnmatch.fnmatchcase(name, pat):
                        return True
        return False

    def relative(self, path: str | os.PathLike[str]) -> str | None:
        """``path`` relative to ``root`` (the current directory by default); None when outside it."""
        root = os.path.abspath(self.root or os.getcwd())
        full = os.path.abspath(path)
        try:
            rel = os.path.relpath(full, root)
        except ValueError:
            return None
        return None if rel == '..' or rel.startswith('..' + os.sep) else rel


def resolve_selectors(items: list[str] | tuple[str, ...], what: str) -> set[str]:
    """Rule ids for selectors: an id (MLP016), a name (unused-param), an id prefix (MLP01) or ALL."""
    out: set[str] = set()
    names = {r.name: r.id for r in RULES.values()}
    for raw in items:
        for item in (p.strip() for p in str(raw).split(',')):
            if not item:
                continue
            up = item.upper()
            if up == 'ALL':
                out |= set(RULES)
            elif up in RULES:
                out.add(up)
            elif item.lower() in names:
                out.add(names[item.lower()])
            elif up.startswith('MLP') and any(r.startswith(up) for r in RULES):
                out |= {r for r in RULES if r.startswith(up)}
            else:
                raise ConfigError(f'{what}: unknown rule {item!r} (see `mlproj lint --list-rules`)')
    return out


def _read(path: Path, root: Path | None) -> bytes:
    """pyproject.toml through the project-file reader (regular file, size bound, inside ``root``)."""
    from mlproj import safefile

    try:
        return safefile.read_bytes(path, root, what='pyproject.toml')
    except safefile.Refused as e:
        raise ConfigError(f'{e.message} ({path})') from None


def _load_toml(path: Path, data: bytes | None = None) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads((data if data is not None else _read(path, None)).decode('utf-8'))
    except UnicodeDecodeError as e:
        raise ConfigError(f'{path} is not UTF-8 text (byte {e.start})') from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f'invalid TOML in {path}: {e}') from None


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above ``start`` that has a [tool.mlproj.lint] table.

    Each candidate is read inside its own repository (a pyproject.toml symlinked out of it, a FIFO
    or an oversized file is a ConfigError, never read)."""
    from mlproj.safefile import find_root

    for d in (start, *start.parents):
        candidate = d / 'pyproject.toml'
        if candidate.exists() and not candidate.is_dir():  # a dangling symlink is no config
            data = _read(candidate, find_root(d))
            if b'mlproj' in data and _table(_load_toml(candidate, data)) is not None:
                return candidate
    return None


def _table(doc: dict[str, Any]) -> dict[str, Any] | None:
    tool = doc.get('tool')
    mlproj = tool.get('mlproj') if isinstance(tool, dict) else None
    lint = mlproj.get('lint') if isinstance(mlproj, dict) else None
    return lint if isinstance(lint, dict) else None


def load_config(pyproject: Path | None, *, select: tuple[str, ...] = (), ignore: tuple[str, ...] = (),
                strict: bool | None = None, fail_on: str | None = None, exit_zero: bool = False,
                no_ignore: bool = False, force_exclude: bool | None = None,
                extend_exclude: tuple[str, ...] = ()) -> LintConfig:
    """Merge the pyproject table (if any) with the flags: --select replaces, --ignore adds."""
    table: dict[str, Any] = {}
    if pyproject is not None:
        table = _table(_load_toml(pyproject)) or {}
    where = f'[tool.mlproj.lint] in {pyproject}'
    for key in table:
        if key not in KEYS:
            raise ConfigError(f'{where}: unknown key {key!r}; expected one of: ' + ', '.join(KEYS))
    chosen = set(RULES)
    if 'select' in table:
        chosen = resolve_selectors(_str_list(table['select'], where, 'select'), f'{where} select')
    if select:
        chosen = resolve_selectors(select, '--select')
    dropped = resolve_selectors(_str_list(table.get('ignore', []), where, 'ignore'), f'{where} ignore')
    dropped |= resolve_selectors(ignore, '--ignore')
    cfg_strict = _bool(table, 'strict', False, where)
    cfg_fail_on = table.get('fail-on')
    if cfg_fail_on is not None:
        if cfg_fail_on not in FAIL_ON:
            raise ConfigError(f'{where}: fail-on must be "error" or "warning", not {cfg_fail_on!r}')
        cfg_strict = cfg_fail_on == 'warning'
    if strict is not None:
        cfg_strict = strict
    if fail_on is not None:
        cfg_strict = fail_on == 'warning'
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    if 'exclude' in table:
        exclude = tuple(_str_list(table['exclude'], where, 'exclude'))
    exclude += tuple(_str_list(table.get('extend-exclude', []), where, 'extend-exclude')) + tuple(extend_exclude)
    respect_gitignore = _bool(table, 'respect-gitignore', True, where) and not no_ignore
    cfg_force = _bool(table, 'force-exclude', False, where)
    severity_raw = table.get('severity', {})
    if not isinstance(severity_raw, dict):
        raise ConfigError(f'{where}: severity must be a table such as {{ MLP016 = "error" }}')
    severity: dict[str, str] = {}
    for key, value in severity_raw.items():
        if value not in SEVERITIES:
            raise ConfigError(f'{where}: severity of {key} must be "error" or "warning", not {value!r}')
        for rule in resolve_selectors([key], f'{where} severity'):
            severity[rule] = value
    return LintConfig(
        select=frozenset(chosen - dropped),
        strict=cfg_strict,
        exclude=exclude,
        severity=severity,
        source=str(pyproject) if pyproject else None,
        root=pyproject.resolve().parent if pyproject else None,
        respect_gitignore=respect_gitignore,
        force_exclude=cfg_force if force_exclude is None else force_exclude,
        exit_zero=exit_zero,
    )


def _bool(table: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f'{where}: {key} must be true or false')
    return value


def _str_list(value: Any, where: str, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{where}: {key} must be a list of strings')
    return value
