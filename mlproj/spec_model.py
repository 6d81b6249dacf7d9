"""The MLproject model: ``Project``, ``EntryPoint``, ``Parameter``, ``EnvSpec``, ``DockerSpec``, the
vocabulary of the file (key sets, parameter types), command templates, and where a declared env
file may point.

Everything here is plain data and pure decisions; building it from a file is
``mlproj.spec_loader``'s job.  An entry point may declare its own ``python_env`` / ``conda_env`` /
``docker_env`` (mlproj only: ``mlflow run`` ignores the key and uses the project's environment);
it is kept as ``EntryPoint.env``, and ``Project.for_entry_point`` is the project as that entry
point runs it, which is what the run pipeline hands to env managers and backends.  Which findings
stop ``mlproj run`` is ``Project.refused`` (each rule's ``run_effect`` in ``mlproj.rules``).
"""
from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlproj.errors import SpecError
from mlproj.findings import Finding
from mlproj.rules import RULES
from mlproj.spec_yaml import Pos

PARAM_TYPES = ('string', 'float', 'int', 'bool', 'path', 'uri')
# Accepted spellings that mean the same as a canonical type.
PARAM_TYPE_ALIASES = {'str': 'string', 'integer': 'int', 'boolean': 'bool', 'double': 'float'}
TOP_LEVEL_KEYS = ('name', 'entry_points', 'conda_env', 'python_env', 'docker_env', 'databricks_spark_job')
ENV_KEYS = ('python_env', 'conda_env', 'docker_env')
# an entry point's own environment (python_env / conda_env / docker_env) is mlproj's: MLflow ignores it
ENTRY_POINT_KEYS = ('parameters', 'command', *ENV_KEYS)
PARAM_KEYS = ('type', 'default')
DOCKER_KEYS = ('image', 'volumes', 'environment')
DATABRICKS_KEYS = ('python_file', 'parameters', 'python_libraries')
MISNAMED_RE = re.compile(r'^mlproject\.(ya?ml|json)$', re.IGNORECASE)
DEFAULT_PYTHON_ENV = 'python_env.yaml'
DEFAULT_CONDA_ENV = 'conda.yaml'


@dataclass(frozen=True)
class Parameter:
    """An entry point's declared parameter: name, type, default and where it was declared."""

    name: str
    type: str = 'string'
    default: Any = None
    pos: Pos = (0, 0)

    @property
    def required(self) -> bool:
        # MLflow's rule: a parameter is required when its default is null / absent.
        return self.default is None

    def default_text(self) -> str | None:
        if self.default is None:
            return None
        if isinstance(self.default, bool):
            return 'True' if self.default else 'False'  # as str() does, for MLflow parity
        return str(self.default)


@dataclass(frozen=True)
class EntryPoint:
    """An entry point: its parameters, command template and own environment, if any."""

    name: str
    command: str | None
    parameters: dict[str, Parameter] = field(default_factory=dict)
    pos: Pos = (0, 0)
    script: bool = False  # a convention entry point (a .py / .sh file), not declared
    env: EnvSpec | None = None  # its own python_env / conda_env / docker_env (mlproj only); None: the project's


@dataclass(frozen=True)
class DockerSpec:
    """A ``docker_env``: image, volumes and environment entries."""

    image: str
    volumes: tuple[str, ...] = ()
    # each entry: a host variable name to copy, or a (name, value) pair
    environment: tuple[str | tuple[str, str], ...] = ()


@dataclass(frozen=True)
class EnvSpec:
    """The project's environment: its kind and the file or image that declares it."""

    kind: str  # 'docker' | 'python' | 'conda' | 'none'
    path: Path | None = None
    docker: DockerSpec | None = None
    declared: bool = False  # named in MLproject rather than found by convention

    def as_dict(self) -> dict[str, Any]:
        return {'kind': self.kind, 'file': str(self.path) if self.path else None,
                'docker_image': self.docker.image if self.docker else None}


@dataclass(frozen=True)
class Project:
    """A loaded MLproject: name, entry points, environment, and the findings of loading it."""

    directory: Path
    name: str | None
    entry_points: dict[str, EntryPoint]
    env: EnvSpec
    mlproject_path: Path | None
    findings: tuple[Finding, ...] = ()
    data: dict = field(default_factory=dict)
    root: Path | None = None  # the checkout / repository root project files may not leave

    def for_entry_point(self, entry_point: EntryPoint | str) -> Project:
        """The project as ``entry_point`` runs it: with the entry point's own environment when it
        declares one (mlproj only; ``mlflow run`` ignores the key), else the project itself."""
        ep = self.entry_points.get(entry_point) if isinstance(entry_point, str) else entry_point
        if ep is None or ep.env is None:
            return self
        return replace(self, env=ep.env)

    def environments(self) -> list[tuple[str | None, EnvSpec]]:
        """The project's environment (``None``) and each entry point's own one, by entry point name."""
        return [(None, self.env)] + [(name, ep.env) for name, ep in self.entry_points.items() if ep.env is not None]

    def get_entry_point(self, name: str) -> EntryPoint:
        """A declared entry point, else a ``.py`` / ``.sh`` file of the project (MLflow's convention)."""
        if name in self.entry_points:
            ep = self.entry_points[name]
            if ep.command is None:  # MLP014, deferred by load_project to the entry point being run
                finding = next((f for f in self.errors if f.rule == 'MLP014' and (f.line, f.col) == ep.pos), None)
                message = finding.message if finding else f'entry point {name!r} has no command'
                raise SpecError(f'MLP014 {message}', finding.where() if finding else str(self.mlproject_path))
            return ep
        where = str(self.mlproject_path or self.directory)
        ext = os.path.splitext(name)[1]
        if ext in ('.py', '.sh'):
            script = _safe_script_path(self.directory, name, where)
            if not script.is_file():
                raise SpecError(f'entry point script {name!r} does not exist in the project', where)
            if ext == '.py':
                command = 'python ' + shlex.quote(name)
            else:
                command = shell_for_scripts() + ' ' + shlex.quote(name)
            return EntryPoint(name=name, command=command, script=True)
        known = ', '.join(sorted(self.entry_points)) or 'none declared'
        hint = did_you_mean(name, self.entry_points)
        misnamed = [f for f in self.findings if f.rule == 'MLP015']
        if misnamed and self.mlproject_path is None:
            hint += f'; note: {os.path.basename(misnamed[0].path)} is ignored, rename it to MLproject'

        raise SpecError(
            f'unknown entry point {name!r}{hint}; declared: {known}; a .py or .sh file of the '
            'project can also be given',
            where,
        )

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == 'error']

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == 'warning']

    def refused(self, *, strict: bool = False) -> list[Finding]:
        """Findings that stop ``mlproj run`` at load time (``strict``: ``mlproj run --strict``)."""
        return [f for f in self.findings if _refuses(f, strict)]

    def run_warnings(self, *, strict: bool = False) -> list[Finding]:
        """What ``mlproj run`` prints and carries on with (MLP014 waits for its entry point to run)."""
        return [f for f in self.findings if not _refuses(f, strict) and RULES[f.rule].run_effect != 'entry-point']


def _refuses(finding: Finding, strict: bool) -> bool:
    effect = RULES[finding.rule].run_effect
    # --strict: every loader error lint reports; MLP006 waits for its default to be used (params.bind)
    return effect == 'refuse' or (strict and effect in ('strict', 'entry-point'))


def run_warning_text(finding: Finding) -> str:
    """A run-time warning: the finding plus what mlproj does about it."""
    effect = RULES[finding.rule].run_effect
    if effect == 'strict':
        return f'{finding} (run as MLflow runs it; mlproj run --strict refuses this)'
    if effect == 'strict-on-use':
        return f'{finding} (passed as given when used, as MLflow does; mlproj run --strict refuses that)'
    return str(finding)


def contained(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def env_file_policy(directory: Path, root: Path, value: str) -> tuple[Path, str]:
    """Where an env file path declared in the MLproject of ``directory`` points.

    Returns (the path, lexically normalised, for reading) and one of ``'project'`` (inside the project
    directory), ``'root'`` (outside it, inside the repository/checkout root) or ``'outside'`` (leaves
    the root, lexically or through a symlink at any component).  Only the decision: reading the file
    is the environment layer's job.
    """
    # both sides real: a root found through symlinks (safefile.find_root) and a directory given
    # through a symlinked path must not look disjoint
    base = Path(os.path.realpath(directory))
    root_abs = Path(os.path.realpath(root))
    path = Path(os.path.normpath(base / value))
    if '\x00' in value:  # names no file at all: the existence check reports it (MLP011)
        return path, 'project'
    if not contained(path, root_abs):
        return path, 'outside'
    real_root = Path(os.path.realpath(root_abs))
    if not contained(Path(os.path.realpath(path)), real_root):
        return path, 'outside'
    real_project = Path(os.path.realpath(base))
    if contained(path, base) and contained(Path(os.path.realpath(path)), real_project):
        return path, 'project'
    return path, 'root'


def shell_for_scripts() -> str:
    shell = os.environ.get('SHELL', '')
    if os.path.basename(shell) in ('bash', 'sh', 'zsh', 'dash', 'ksh'):
        return shlex.quote(shell)
    return 'bash'


def _safe_script_path(directory: Path, name: str, where: str) -> Path:
    if os.path.isabs(name) or '\x00' in name:
        raise SpecError(f'entry point script {name!r} must be a relative path inside the project', where)
    root = directory.resolve()
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        raise SpecError(f'entry point script {name!r} escapes the project directory', where)
    return target


def did_you_mean(word: str, candidates: Any) -> str:
    import difflib  # only for a mistake's message: not on a good run's path

    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f' (did you mean {close[0]!r}?)' if close else ''


# --------------------------------------------------------------------------------------------
# placeholders in commands

PLACEHOLDER_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_\-]*$')


def iter_template(command: str) -> Iterator[tuple[str, str]]:
    """Split a command template into ('text', s) and ('param', name) pieces.

    ``{{`` and ``}}`` are literal braces (as in MLflow, which uses ``str.format``).  A brace group
    whose content is not a name (``{print $1}``) is kept literally instead of failing.
    """
    i, n = 0, len(command)
    buf: list[str] = []
    while i < n:
        c = command[i]
        if c == '{':
            if command.startswith('{{', i):
                buf.append('{')
                i += 2
                continue
            j = command.find('}', i + 1)
            inner = command[i + 1:j] if j != -1 else ''
            if j != -1 and PLACEHOLDER_NAME.match(inner):
                if buf:
                    yield 'text', ''.join(buf)
                    buf = []
                yield 'param', inner
                i = j + 1
                continue
            buf.append(c)
            i += 1
        elif c == '}' and command.startswith('}}', i):
            buf.append('}')
            i += 2
        else:
            buf.append(c)
            i += 1
    if buf:
        yield 'text', ''.join(buf)


def placeholders(command: str) -> list[str]:
    return [v for kind, v in iter_template(command) if kind == 'param']
