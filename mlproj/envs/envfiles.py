"""``python_env.yaml`` and ``conda.yaml``: parsing with positions, validation, conda -> PyPI (``conda_pypi``).

This is the only module that reads env files: every env manager and every backend asks it.
``project_python_env`` is a project's environment as a python_env spec (its conda.yaml mapped
onto PyPI), which the uv and virtualenv managers install (locally, and for ``-b slurm`` on the
submitting host); ``pypi_requirements`` is the same spec as one flat requirement list with the
``-r`` files inlined, for installers that get the list away from the project directory (Ray);
``conda_export`` is a conda.yaml as the mapping a conda installer elsewhere is given (Ray's
``--env-manager conda``).  So a conda.yaml maps onto the same PyPI requirements, and is refused for
the same reasons with the same one-line messages, whichever backend runs it.

The same readers serve ``mlproj run`` (which raises ``EnvError`` on the first error, with
``file:line:col``) and ``mlproj lint`` (``validate_python_env`` / ``validate_conda_env`` return
every finding under rule ``MLP017``).  Env files and the ``-r`` / ``-c`` files they name are
read through ``mlproj.safefile``: inside ``root`` (the checkout / repository root; by default the
nearest directory holding ``.git``), regular files only, at most ``MLPROJ_MAX_FILE_BYTES``.  A
refused file becomes a finding that names it and the reason, never its content.
"""
from __future__ import annotations

import difflib
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlproj import safefile
from mlproj.envs.conda_pypi import Mapped, map_conda_dep
from mlproj.errors import EnvError
from mlproj.findings import Finding
from mlproj.spec_model import Project
from mlproj.spec_yaml import parse_yaml

RULE = 'MLP017'
PYTHON_ENV_KEYS = ('python', 'build_dependencies', 'dependencies')
# pip options that name a file, relative to the project directory
FILE_OPTIONS = ('-r', '--requirement', '-c', '--constraint')


@dataclass(frozen=True)
class PythonEnv:
    """A python_env spec (MLflow's format), whatever file it came from."""
    python: str | None = None
    build_dependencies: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    source: str = ''          # the file it was read from ('' = none)
    python_where: str = ''    # file:line:col of the python version, for error messages

    def as_dict(self) -> dict:
        return {'python': self.python, 'build_dependencies': list(self.build_dependencies),
                'dependencies': list(self.dependencies)}


@dataclass(frozen=True)
class CondaEnv:
    name: str | None
    channels: tuple[str, ...]
    dependencies: tuple[tuple[str, str], ...]   # (conda spec, file:line:col)
    pip: tuple[str, ...]
    source: str


# --------------------------------------------------------------------------------------------
# reading


def _root(root: str | os.PathLike[str] | None, start: Path) -> Path:
    return Path(root) if root is not None else safefile.find_root(start)


def _read_text(path: Path, root: Path) -> tuple[str | None, list[Finding]]:
    try:
        raw = safefile.read_bytes(path, root, what='environment file')
    except safefile.Refused as e:
        if e.missing and not os.path.lexists(path):
            return None, [Finding('MLP011', 'environment file does not exist', 0, 0, str(path))]
        return None, [Finding(RULE, e.message, 0, 0, str(path))]
    try:
        return raw.decode('utf-8-sig'), []
    except UnicodeDecodeError as e:
        return None, [Finding(RULE, f'environment file is not UTF-8 text (byte {e.start})', 0, 0, str(path))]


def _yaml(path: Path, root: Path) -> tuple[Any, Any, list[Finding]]:
    text, findings = _read_text(path, root)
    if text is None:
        return None, None, findings
    data, doc = parse_yaml(text)
    for f in doc.findings:  # syntax errors and duplicate keys, reported under the env-file rule
        findings.append(Finding(RULE, f.message, f.line, f.col, str(path)))
    return data, doc, findings


def _reference_problem(base: Path, ref: str, root: Path) -> str | None:
    """Why a ``-r`` / ``-c`` file cannot be used (None: it is a readable regular file in ``root``)."""
    try:
        fd, _ = safefile.open_regular(base / ref, root, what=f'requirements file {ref!r}')
    except safefile.Refused as e:
        if e.missing and not os.path.lexists(base / ref):
            return f'requirements file {ref!r} does not exist (relative to {base})'
        return e.message
    os.close(fd)
    return None


class _Pos:
    def __init__(self, path: Path, doc: Any) -> None:
        self.path = str(path)
        self.doc = doc

    def at(self, keypath: tuple, key: bool = False) -> tuple[int, int]:
        if self.doc is None:
            return (0, 0)
        table = self.doc.key_pos if key else self.doc.value_pos
        return table.get(keypath) or self.doc.key_pos.get(keypath) or (0, 0)

    def finding(self, message: str, keypath: tuple = (), key: bool = False) -> Finding:
        line, col = self.at(keypath, key)
        return Finding(RULE, message, line, col, self.path)

    def where(self, keypath: tuple) -> str:
        line, col = self.at(keypath)
        return f'{self.path}:{line}:{col}' if line else self.path


def _kind(value: Any) -> str:
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'a boolean'
    if isinstance(value, (int, float)):
        return f'the number {value!r}'
    names: dict[type, str] = {dict: 'a mapping', list: 'a list', str: 'a string'}
    return names.get(type(value), type(value).__name__)


def file_references(line: str) -> list[str]:
    """Files named by ``-r x`` / ``--requirement=x`` / ``-c x`` in one requirement line."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return []
    out = []
    for i, w in enumerate(words):
        for opt in FILE_OPTIONS:
            if w == opt and i + 1 < len(words):
                out.append(words[i + 1])
            elif opt.startswith('--') and w.startswith(opt + '='):
                out.append(w[len(opt) + 1:])
            elif not opt.startswith('--') and w.startswith(opt) and len(w) > len(opt):
                out.append(w[len(opt):])
    return out


def read_python_env(path: str | os.PathLike[str], project_dir: str | os.PathLike[str] | None = None,
                    root: str | os.PathLike[str] | None = None) -> tuple[PythonEnv | None, list[Finding]]:
    """Parse a python_env.yaml; ``-r`` files are resolved against ``project_dir`` (default: its dir)."""
    path = Path(path)
    base = Path(project_dir) if project_dir is not None else path.parent
    root = _root(root, base)
    data, doc, findings = _yaml(path, root)
    if data is None and not findings:
        findings.append(Finding(RULE, 'python_env file is empty; expected keys: ' + ', '.join(PYTHON_ENV_KEYS),
                                0, 0, str(path)))
    if findings and data is None:
        return None, findings
    pos = _Pos(path, doc)
    if not isinstance(data, dict):
        return None, findings + [pos.finding(f'python_env must be a mapping with keys {", ".join(PYTHON_ENV_KEYS)}, '
                                             f'not {_kind(data)}')]
    for key in data:
        if key not in PYTHON_ENV_KEYS:
            close = difflib.get_close_matches(str(key), PYTHON_ENV_KEYS, n=1, cutoff=0.6)
            hint = f' (did you mean {close[0]!r}?)' if close else ''
            findings.append(pos.finding(f'unknown key {key!r} in python_env{hint}; expected one of: '
                                        + ', '.join(PYTHON_ENV_KEYS), (key,), key=True))
    python = data.get('python')
    if python is not None and not isinstance(python, str):
        hint = ' (quote it: YAML reads 3.10 as the number 3.1)' if isinstance(python, float) else ''
        findings.append(pos.finding(f'python must be a string such as "3.11", not {_kind(python)}{hint}',
                                    ('python',)))
        python = None
    elif isinstance(python, str) and not python.strip():
        findings.append(pos.finding('python must not be empty', ('python',)))
        python = None
    lists: dict[str, tuple[str, ...]] = {}
    for key in ('build_dependencies', 'dependencies'):
        value = data.get(key)
        if value is None:
            lists[key] = ()
            continue
        if not isinstance(value, list):
            findings.append(pos.finding(f'{key} must be a list of requirement strings, not {_kind(value)}', (key,)))
            lists[key] = ()
            continue
        items = []
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, (str, int, float)) or not str(item).strip():
                findings.append(pos.finding(f'{key} entry {i + 1} must be a requirement string, not {_kind(item)}',
                                            (key, i)))
                continue
            line = str(item).strip()
            for ref in file_references(line):
                problem = _reference_problem(base, ref, root)
                if problem:
                    findings.append(pos.finding(problem, (key, i)))
            items.append(line)
        lists[key] = tuple(items)
    env = PythonEnv(python.strip() if isinstance(python, str) else None, lists['build_dependencies'],
                    lists['dependencies'], str(path), pos.where(('python',)) if python else str(path))
    return env, findings


def validate_python_env(path: str | os.PathLike[str], project_dir: str | os.PathLike[str] | None = None,
                        root: str | os.PathLike[str] | None = None) -> list[Finding]:
    """Every problem of a python_env.yaml (rule MLP017; MLP011 when the file is missing)."""
    return read_python_env(path, project_dir, root)[1]


def load_python_env(path: str | os.PathLike[str], project_dir: str | os.PathLike[str] | None = None,
                    root: str | os.PathLike[str] | None = None) -> PythonEnv:
    env, findings = read_python_env(path, project_dir, root)
    _raise_first(findings)
    assert env is not None
    return env


def _raise_first(findings: list[Finding]) -> None:
    errors = [f for f in findings if f.severity == 'error']
    if errors:
        f = errors[0]
        raise EnvError(f'{f.rule} {f.message}', f.where())


def read_conda_env(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
                   ) -> tuple[CondaEnv | None, list[Finding]]:
    path = Path(path)
    root = _root(root, path.parent)
    data, doc, findings = _yaml(path, root)
    if data is None and not findings:
        findings.append(Finding(RULE, 'conda environment file is empty', 0, 0, str(path)))
    if findings and data is None:
        return None, findings
    pos = _Pos(path, doc)
    if not isinstance(data, dict):
        return None, findings + [pos.finding(f'conda environment must be a mapping with name, channels and '
                                             f'dependencies, not {_kind(data)}')]
    name = data.get('name')
    if name is not None and not isinstance(name, (str, int, float)):
        findings.append(pos.finding(f'name must be a string, not {_kind(name)}', ('name',)))
    channels = data.get('channels') or []
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        findings.append(pos.finding('channels must be a list of channel names', ('channels',)))
        channels = []
    deps_raw = data.get('dependencies')
    deps: list[tuple[str, str]] = []
    pip: list[str] = []
    if deps_raw is None:
        deps_raw = []
    if not isinstance(deps_raw, list):
        findings.append(pos.finding(f'dependencies must be a list, not {_kind(deps_raw)}', ('dependencies',)))
        deps_raw = []
    for i, item in enumerate(deps_raw):
        kp = ('dependencies', i)
        if isinstance(item, str) and item.strip():
            deps.append((item.strip(), pos.where(kp)))
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            deps.append((str(item), pos.where(kp)))
        elif isinstance(item, dict) and set(item) == {'pip'}:
            plist = item['pip'] or []
            if not isinstance(plist, list):
                findings.append(pos.finding(f'the pip section must be a list of requirement strings, not '
                                            f'{_kind(plist)}', kp + ('pip',)))
                continue
            for j, p in enumerate(plist):
                if isinstance(p, bool) or not isinstance(p, (str, int, float)) or not str(p).strip():
                    findings.append(pos.finding(f'pip entry {j + 1} must be a requirement string, not {_kind(p)}',
                                                kp + ('pip', j)))
                    continue
                for ref in file_references(str(p)):
                    problem = _reference_problem(path.parent, ref, root)
                    if problem:
                        findings.append(pos.finding(problem, kp + ('pip', j)))
                pip.append(str(p).strip())
        else:
            findings.append(pos.finding(f'invalid conda dependency {item!r}: must be a string or a mapping '
                                        '{pip: [...]}', kp))
    env = CondaEnv(str(name) if isinstance(name, (str, int, float)) else None, tuple(channels), tuple(deps),
                   tuple(pip), str(path))
    return env, findings


def validate_conda_env(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> list[Finding]:
    """Every problem of a conda.yaml (rule MLP017; MLP011 when the file is missing)."""
    return read_conda_env(path, root)[1]


def load_conda_env(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> CondaEnv:
    env, findings = read_conda_env(path, root)
    _raise_first(findings)
    assert env is not None
    return env


# --------------------------------------------------------------------------------------------
# conda -> PyPI (the per-package mapping: conda_pypi.py)


def conda_to_python_env(env: CondaEnv) -> PythonEnv:
    """Map a conda environment onto PyPI: python version, pip section, conda packages by name.

    Raises ``EnvError`` listing every conda package that has no PyPI equivalent.
    """
    out = Mapped()
    python_where = env.source
    for spec, where in env.dependencies:
        before = out.python
        map_conda_dep(spec, where, out)
        if out.python != before:
            python_where = where
    if out.unmappable:
        raise EnvError('conda packages with no PyPI equivalent: ' + ', '.join(out.unmappable)
                       + '; use --env-manager conda on a machine with conda, or replace them by PyPI '
                       'packages in the pip section', env.source)
    return PythonEnv(out.python, tuple(out.build), tuple(out.deps) + env.pip, env.source, python_where)


# --------------------------------------------------------------------------------------------
# a project's environment, as every backend installs it


def project_python_env(project: Project) -> PythonEnv:
    """The python_env spec of a project: its python_env.yaml, its conda.yaml mapped onto PyPI, or empty."""
    env = project.env
    if env.kind == 'python' and env.path is not None:
        return load_python_env(env.path, project.directory, project.root)
    if env.kind == 'conda' and env.path is not None:
        return conda_to_python_env(load_conda_env(env.path, project.root))
    return PythonEnv()


def _requirement_file(line: str) -> str | None:
    """The file of a ``-r x`` / ``--requirement x`` / ``--requirement=x`` / ``-rx`` line, else None."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return None
    if len(words) == 2 and words[0] in ('-r', '--requirement'):
        return words[1]
    if len(words) == 1 and words[0].startswith('--requirement='):
        return words[0][len('--requirement='):]
    if len(words) == 1 and words[0].startswith('-r') and not words[0].startswith('--') and len(words[0]) > 2:
        return words[0][2:]
    return None


def _file_lines(text: str) -> list[str]:
    """The requirement lines of a requirements file (pip's syntax: ``\\`` continues a line, ``#``
    at the start or after whitespace starts a comment)."""
    out = []
    for raw in re.sub(r'\\\r?\n', '', text).splitlines():
        line = re.sub(r'(^|\s)#.*$', '', raw).strip()
        if line:
            out.append(line)
    return out


def expand_requirements(lines: tuple[str, ...] | list[str], base: str | os.PathLike[str],
                        root: str | os.PathLike[str] | None = None, where: str = '',
                        _seen: set[Path] | None = None) -> list[str]:
    """Requirement lines with every ``-r`` file inlined (recursively, relative to the file that
    names it, each file once).  Files are read through ``mlproj.safefile`` (inside ``root``,
    regular, bounded); a refused one is an ``EnvError`` naming it.  Other lines (``-c``, options,
    ``./pkg``) are kept as they are."""
    base = Path(base)
    root = _root(root, base)
    seen = _seen if _seen is not None else set()
    out: list[str] = []
    for line in lines:
        ref = _requirement_file(line)
        if ref is None:
            out.append(line.strip())
            continue
        path = base / ref
        key = Path(os.path.abspath(path))
        if key in seen:
            continue
        seen.add(key)
        try:
            raw = safefile.read_bytes(path, root, what=f'requirements file {ref!r}')
        except safefile.Refused as e:
            if e.missing and not os.path.lexists(path):
                raise EnvError(f'requirements file {ref!r} does not exist (relative to {base})',
                               where or str(base)) from None
            raise EnvError(e.message, where or str(base)) from None
        try:
            text = raw.decode('utf-8-sig')
        except UnicodeDecodeError as e:
            raise EnvError(f'requirements file {ref!r} is not UTF-8 text (byte {e.start})', str(path)) from None
        out += expand_requirements(_file_lines(text), path.parent, root, str(path), seen)
    return out


def pypi_requirements(project: Project) -> tuple[str | None, list[str]]:
    """The python version and the flat PyPI requirement list of a project's env file.

    The requirements are ``project_python_env``'s build_dependencies then dependencies, with the
    ``-r`` files inlined relative to the project directory (where the uv and virtualenv managers
    run their installs).  ``(None, [])`` for a project without a python_env / conda_env."""
    spec = project_python_env(project)
    lines = spec.build_dependencies + spec.dependencies
    return spec.python, expand_requirements(lines, project.directory, project.root, spec.source)


def conda_export(project: Project) -> dict[str, Any]:
    """A project's conda.yaml as the environment mapping a conda installer elsewhere is given:
    validated as for ``--env-manager conda``, ``name`` and ``prefix`` left out (the installer names
    the environment), and the ``-r`` files of its pip section inlined (that installer writes the
    pip list next to its own copy of the file, not next to the project's)."""
    env = project.env
    if env.kind != 'conda' or env.path is None:
        raise EnvError('the project has no conda_env', str(project.mlproject_path or project.directory))
    conda = load_conda_env(env.path, project.root)
    base = Path(env.path).parent   # conda resolves the pip section's files next to the env file
    data, _doc, findings = _yaml(Path(env.path), _root(project.root, Path(env.path).parent))
    _raise_first(findings)
    out = {k: v for k, v in data.items() if k not in ('name', 'prefix')}
    deps = []
    for item in out.get('dependencies') or []:
        if isinstance(item, dict) and set(item) == {'pip'}:
            item = {'pip': expand_requirements([str(p).strip() for p in item['pip'] or []], base, project.root,
                                               conda.source)}
        deps.append(item)
    if 'dependencies' in out:
        out['dependencies'] = deps
    return out
