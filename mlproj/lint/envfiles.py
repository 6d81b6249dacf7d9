"""Structural checks of a project's environment files: ``python_env.yaml`` and ``conda.yaml``.

Every problem is a ``Finding`` with rule MLP017 (env-file-malformed); nothing here raises on bad
content.  Self-contained on purpose (only ``mlproj.spec`` for the YAML reader), so the environment
managers can import it without a cycle.  The shapes are MLflow's:

- python_env.yaml: ``python`` (a string, "3.10" not 3.10), ``build_dependencies`` and
  ``dependencies`` (lists of pip requirement strings); no other keys.
- conda.yaml: a mapping whose ``dependencies`` is a list of strings and at most one
  ``{pip: [requirement strings]}`` mapping; ``channels`` a list of strings; ``name`` a string.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mlproj.spec import Finding, _kind, parse_yaml

PYTHON_ENV_KEYS = ('python', 'build_dependencies', 'dependencies')
RULE = 'MLP017'


class _Checker:
    def __init__(self, label: str, doc: Any) -> None:
        self.label = label
        self.doc = doc
        self.findings: list[Finding] = []

    def add(self, message: str, path: tuple) -> None:
        pos = self.doc.value_pos.get(path) or self.doc.key_pos.get(path) or (0, 0)
        self.findings.append(Finding(RULE, message, pos[0], pos[1], self.label))

    def add_key(self, message: str, path: tuple) -> None:
        pos = self.doc.key_pos.get(path) or self.doc.value_pos.get(path) or (0, 0)
        self.findings.append(Finding(RULE, message, pos[0], pos[1], self.label))

    def string_list(self, value: Any, path: tuple, what: str) -> None:
        if value is None:
            return
        if not isinstance(value, list):
            self.add(f'{what} must be a list of strings, not {_kind(value)}', path)
            return
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.add(f'{what}[{i}] must be a non-empty string, not {_kind(item)}', path + (i,))


def _read(path: Path, label: str) -> tuple[Any, Any, list[Finding]]:
    """(data, positions or None when unreadable, findings so far)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        return None, None, [Finding(RULE, f'cannot read {path.name}: {e.strerror}', 0, 0, label)]
    try:
        text = raw.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        return None, None, [Finding(RULE, f'{path.name} is not UTF-8 text (byte {e.start})', 0, 0, label)]
    data, doc = parse_yaml(text)
    findings = [Finding(RULE, f'{path.name}: {f.message}', f.line, f.col, label) for f in doc.findings]
    if any(f.rule == 'MLP001' for f in doc.findings):
        return None, None, findings
    return data, doc, findings


def validate_python_env(path: str | Path, label: str | None = None) -> list[Finding]:
    """Findings (rule MLP017) for a python_env.yaml file."""
    path = Path(path)
    label = label or str(path)
    data, doc, findings = _read(path, label)
    if doc is None:
        return findings
    check = _Checker(label, doc)
    if data is None:
        check.add(f'{path.name} is empty; write at least `python: "3.11"` or `dependencies: [...]`', ())
        return findings + check.findings
    if not isinstance(data, dict):
        check.add(f'{path.name} must be a mapping with python, build_dependencies, dependencies, '
                  f'not {_kind(data)}', ())
        return findings + check.findings
    for key in data:
        if key not in PYTHON_ENV_KEYS:
            check.add_key(f'unknown key {key!r} in {path.name}; expected one of: ' + ', '.join(PYTHON_ENV_KEYS),
                          (key,))
    python = data.get('python')
    if python is not None and not isinstance(python, str):
        hint = f' (quote it: python: "{python}")' if isinstance(python, (int, float)) and not isinstance(
            python, bool) else ''
        check.add(f'python must be a string, not {_kind(python)}{hint}', ('python',))
    check.string_list(data.get('build_dependencies'), ('build_dependencies',), 'build_dependencies')
    check.string_list(data.get('dependencies'), ('dependencies',), 'dependencies')
    return findings + check.findings


def validate_conda_env(path: str | Path, label: str | None = None) -> list[Finding]:
    """Findings (rule MLP017) for a conda environment file (conda.yaml)."""
    path = Path(path)
    label = label or str(path)
    data, doc, findings = _read(path, label)
    if doc is None:
        return findings
    check = _Checker(label, doc)
    if data is None:
        check.add(f'{path.name} is empty; a conda environment needs at least `dependencies: [...]`', ())
        return findings + check.findings
    if not isinstance(data, dict):
        check.add(f'{path.name} must be a mapping with name, channels, dependencies, not {_kind(data)}', ())
        return findings + check.findings
    name = data.get('name')
    if name is not None and not isinstance(name, str):
        check.add(f'name must be a string, not {_kind(name)}', ('name',))
    check.string_list(data.get('channels'), ('channels',), 'channels')
    deps = data.get('dependencies')
    if deps is None:
        return findings + check.findings
    if not isinstance(deps, list):
        check.add(f'dependencies must be a list, not {_kind(deps)}', ('dependencies',))
        return findings + check.findings
    pip_sections = 0
    for i, dep in enumerate(deps):
        dpath = ('dependencies', i)
        if isinstance(dep, str):
            if not dep.strip():
                check.add(f'dependencies[{i}] is an empty string', dpath)
            continue
        if isinstance(dep, dict):
            if list(dep) != ['pip']:
                check.add(f'dependencies[{i}] must be a package string or {{pip: [...]}}, not a mapping with '
                          + ', '.join(repr(k) for k in dep), dpath)
                continue
            pip_sections += 1
            if pip_sections > 1:
                check.add('more than one pip section in dependencies', dpath)
            check.string_list(dep['pip'], dpath + ('pip',), f'dependencies[{i}].pip')
            continue
        hint = ' (quote it)' if isinstance(dep, (int, float)) and not isinstance(dep, bool) else ''
        check.add(f'dependencies[{i}] must be a package string or {{pip: [...]}}, not {_kind(dep)}{hint}', dpath)
    return findings + check.findings


def validate_env_file(kind: str, path: str | Path, label: str | None = None) -> list[Finding]:
    """Dispatch on the project's env kind ('python' or 'conda')."""
    if kind == 'python':
        return validate_python_env(path, label)
    if kind == 'conda':
        return validate_conda_env(path, label)
    return []
