"""``mlproj lint`` configuration: ``[tool.mlproj.lint]`` in pyproject.toml, then command-line flags.

    [tool.mlproj.lint]
    select = ["MLP0"]            # ids, names or id prefixes; default: every rule
    ignore = ["unused-param"]    # removed from the selection
    strict = false               # warnings fail the run too
    exclude = ["vendor/**"]      # glob patterns (relative paths) skipped when walking directories
    severity = { MLP016 = "error" }  # per-rule severity override
"""
from __future__ import annotations

import fnmatch
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlproj.rules import RULES

KEYS = ('select', 'ignore', 'strict', 'exclude', 'severity')
SEVERITIES = ('error', 'warning')


class ConfigError(ValueError):
    """A bad selector or configuration value: a usage error (exit 2)."""


@dataclass(frozen=True)
class LintConfig:
    select: frozenset[str] = field(default_factory=lambda: frozenset(RULES))
    strict: bool = False
    exclude: tuple[str, ...] = ()
    severity: dict[str, str] = field(default_factory=dict)
    source: str | None = None  # the pyproject.toml it came from

    def enabled(self, rule: str) -> bool:
        return rule in self.select

    def severity_of(self, rule: str) -> str:
        return self.severity.get(rule) or RULES[rule].severity

    def excluded(self, relpath: str) -> bool:
        rel = relpath.replace(os.sep, '/')
        return any(fnmatch.fnmatchcase(rel, pat) or fnmatch.fnmatchcase(rel, pat.rstrip('/') + '/*')
                   for pat in self.exclude)


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


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, 'rb') as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f'cannot read {path}: {e.strerror}') from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f'invalid TOML in {path}: {e}') from None


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above ``start`` that has a [tool.mlproj.lint] table."""
    for d in (start, *start.parents):
        candidate = d / 'pyproject.toml'
        if candidate.is_file():
            try:
                text = candidate.read_text(encoding='utf-8', errors='replace')
            except OSError:
                continue
            if 'mlproj' in text and _table(_load_toml(candidate)) is not None:
                return candidate
    return None


def _table(doc: dict[str, Any]) -> dict[str, Any] | None:
    tool = doc.get('tool')
    mlproj = tool.get('mlproj') if isinstance(tool, dict) else None
    lint = mlproj.get('lint') if isinstance(mlproj, dict) else None
    return lint if isinstance(lint, dict) else None


def load_config(pyproject: Path | None, *, select: tuple[str, ...] = (), ignore: tuple[str, ...] = (),
                strict: bool | None = None) -> LintConfig:
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
    cfg_strict = table.get('strict', False)
    if not isinstance(cfg_strict, bool):
        raise ConfigError(f'{where}: strict must be true or false')
    exclude = tuple(_str_list(table.get('exclude', []), where, 'exclude'))
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
        strict=cfg_strict if strict is None else strict,
        exclude=exclude,
        severity=severity,
        source=str(pyproject) if pyproject else None,
    )


def _str_list(value: Any, where: str, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{where}: {key} must be a list of strings')
    return value
