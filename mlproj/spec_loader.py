"""Loading an MLproject: file discovery, reading through ``mlproj.safefile``, and building the model
(``mlproj.spec_model``) from the positioned YAML of ``mlproj.spec_yaml``.

``parse_mlproject`` never raises on bad content: it returns the project it could build plus a list
of ``Finding``s (rule ids from ``rules.py``).  ``load_project`` is the entry used by ``mlproj run``:
it raises ``SpecError`` on the first finding whose run-time effect is ``refuse`` (with
``refuse_lint_errors``, ``mlproj run --strict``, on every finding lint reports as an error) and
leaves the rest for the caller to print as warnings.  Where MLflow runs a dubious file (a duplicate
key: the last value wins; an unknown type: a string; an invalid typed default: passed as given; an
env file in a parent folder of the same repository) the model is built the way MLflow reads it.
The linter calls ``analyse_mlproject`` directly, so run and lint agree by construction.  Whether a
typed default parses is ``params.default_parses``, the same rules ``-P`` values are checked with.

Env file paths (``python_env: ../python_env.yaml``) may point anywhere inside the *root*: the
repository or checkout root the project comes from (``ResolvedSource.root``; for ``mlproj lint`` and
the Python API, the nearest enclosing Git work tree, else the project directory).  A path that leaves
the root lexically, or whose resolved target (symlinks followed) does, is MLP027 and refused
(``spec_model.env_file_policy``).
"""
from __future__ import annotations

import os
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlproj.errors import SpecError
from mlproj.findings import Finding
from mlproj.params import default_parses
from mlproj.spec_model import (
    DATABRICKS_KEYS,
    DEFAULT_CONDA_ENV,
    DEFAULT_PYTHON_ENV,
    DOCKER_KEYS,
    ENTRY_POINT_KEYS,
    MISNAMED_RE,
    PARAM_KEYS,
    PARAM_TYPE_ALIASES,
    PARAM_TYPES,
    PLACEHOLDER_NAME,
    TOP_LEVEL_KEYS,
    DockerSpec,
    EntryPoint,
    EnvSpec,
    Parameter,
    Project,
    did_you_mean,
    env_file_policy,
    placeholders,
    shell_for_scripts,
)
from mlproj.spec_yaml import Doc, kind_of, parse_yaml


def find_mlproject(directory: Path) -> tuple[Path | None, list[str]]:
    """Return (the MLproject file or None, misnamed candidates such as MLproject.yaml).

    Any entry named MLproject that is not a directory counts (a FIFO, a device or a symlink
    leaving the repository is then refused by the reader rather than silently skipped).
    Raises ``SpecError`` when several files match case-insensitively.
    """
    try:
        names = sorted(os.listdir(directory))
    except OSError as e:
        raise SpecError(f'cannot read project directory: {e.strerror}', str(directory)) from None
    matches = [n for n in names if n.lower() == 'mlproject' and not (directory / n).is_dir()]
    if len(matches) > 1:
        raise SpecError('MLP018 several MLproject files differ only in letter case: ' + ', '.join(matches),
                        str(directory))
    misnamed = [n for n in names if MISNAMED_RE.match(n)]
    return (directory / matches[0] if matches else None), misnamed


def read_mlproject(path: Path, root: str | os.PathLike[str] | None) -> bytes:
    """The bytes of an MLproject file through the project-file reader (``mlproj.safefile``)."""
    from mlproj import safefile

    try:
        return safefile.read_bytes(path, root if root is not None else safefile.find_root(path.parent),
                                   what='MLproject')
    except safefile.Refused as e:
        raise SpecError(e.message, str(path)) from None


class Builder:
    def __init__(self, directory: Path, path_label: str, data: Any, doc: Doc, root: Path | None = None) -> None:
        self.directory = directory
        self.root = root
        self.label = path_label
        self.data = data
        self.doc = doc
        self.findings: list[Finding] = [f._replace(path=path_label) for f in doc.findings]

    def add(self, rule: str, message: str, path: tuple, *, key: bool = False) -> None:
        table = self.doc.key_pos if key else self.doc.value_pos
        line, col = table.get(path) or self.doc.key_pos.get(path) or self.doc.value_pos.get(path[:-1], (0, 0))
        self.findings.append(Finding(rule, message, line, col, self.label))

    def unknown_keys(self, mapping: dict, allowed: tuple, path: tuple, what: str) -> None:
        for key in mapping:
            if key not in allowed:
                hint = did_you_mean(str(key), allowed)
                self.add('MLP004', f'unknown key {key!r} in {what}{hint}; expected one of: '
                         + ', '.join(allowed), path + (key,), key=True)

    def build(self) -> Project:
        data = self.data
        if data is None:
            if not any(f.rule == 'MLP001' for f in self.findings):
                self.add('MLP013', 'MLproject is empty; running as a convention project', ())
            data = {}
        if not isinstance(data, dict):
            self.add('MLP003', f'MLproject must be a mapping of keys, not {kind_of(data)}', ())
            data = {}
        self.unknown_keys(data, TOP_LEVEL_KEYS, (), 'MLproject')
        name = data.get('name')
        if name is not None and (not isinstance(name, (str, int, float)) or isinstance(name, bool)):
            hint = ' (YAML reads yes/no/true/false/on/off as booleans: quote the name)' if isinstance(
                name, bool) else ''
            self.add('MLP003', f'name must be a string, not {kind_of(name)}{hint}', ('name',))
            name = None
        entry_points = self.entry_points(data.get('entry_points'))
        env = self.env(data)
        if data.get('databricks_spark_job') is not None:
            self.databricks_spark_job(data['databricks_spark_job'])
        return Project(
            directory=self.directory,
            name=str(name) if name is not None else None,
            entry_points=entry_points,
            env=env,
            mlproject_path=None,
            findings=tuple(self.findings),
            data=data,
        )

    def entry_points(self, raw: Any) -> dict[str, EntryPoint]:
        path = ('entry_points',)
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.add('MLP003', f'entry_points must be a mapping of name to entry point, not {kind_of(raw)}', path)
            return {}
        out: dict[str, EntryPoint] = {}
        for ep_name, ep in raw.items():
            ep_path = path + (ep_name,)
            if not isinstance(ep_name, str) or not ep_name:
                self.add('MLP019', f'entry point name must be a non-empty string, not {ep_name!r}', ep_path, key=True)
                continue
            if ep is None:
                ep = {}
            if not isinstance(ep, dict):
                self.add('MLP003', f'entry point {ep_name!r} must be a mapping with command and parameters, '
                         f'not {kind_of(ep)}', ep_path)
                continue
            self.unknown_keys(ep, ENTRY_POINT_KEYS, ep_path, f'entry point {ep_name!r}')
            params = self.parameters(ep_name, ep.get('parameters'), ep_path + ('parameters',))
            command = ep.get('command')
            script = False
            if command is not None and not isinstance(command, (str, int, float)) or isinstance(command, bool):
                self.add('MLP003', f'command of entry point {ep_name!r} must be a string, not {kind_of(command)}',
                         ep_path + ('command',))
                command = None
            elif command is not None:
                command = str(command)
                for ph in dict.fromkeys(placeholders(command)):
                    if ph not in params:
                        hint = did_you_mean(ph, params)
                        self.add('MLP012', f'command of entry point {ep_name!r} uses {{{ph}}} but declares no '
                                 f'parameter {ph!r}{hint}', ep_path + ('command',))
                used = set(placeholders(command))
                for pname in params:
                    if pname not in used:
                        self.add('MLP016', f'parameter {pname!r} of entry point {ep_name!r} is never used in its '
                                 'command, so its value never reaches the program',
                                 ep_path + ('parameters', pname), key=True)
            else:  # no command: an entry point named after a project script runs it
                command = self.script_command(ep_name, params)
                script = command is not None
                if command is None:
                    self.add('MLP014', f'entry point {ep_name!r} has no command (add `command: ...`, or name the '
                             'entry point after a .py / .sh file of the project)', ep_path, key=True)
            env = self.declared_env(ep, ep_path)
            out[ep_name] = EntryPoint(ep_name, command, params, self.doc.key_pos.get(ep_path, (0, 0)), script, env)
        return out

    def script_command(self, ep_name: str, params: dict[str, Parameter]) -> str | None:
        """A declared entry point named like a project script (``train.py``) runs that script.

        Its declared parameters are passed as ``--name value``, as MLflow does for script entry points.
        """
        ext = os.path.splitext(ep_name)[1]
        if ext not in ('.py', '.sh') or os.path.isabs(ep_name) or '\x00' in ep_name:
            return None
        if '..' in Path(ep_name).parts or not (self.directory / ep_name).is_file():
            return None
        prog = 'python' if ext == '.py' else shell_for_scripts()
        literal = f'{prog} {shlex.quote(ep_name)}'.replace('{', '{{').replace('}', '}}')
        args = [f' --{pname} {{{pname}}}' for pname in params if PLACEHOLDER_NAME.match(pname)]
        return literal + ''.join(args)

    def parameters(self, ep_name: str, raw: Any, path: tuple) -> dict[str, Parameter]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.add('MLP003', f'parameters of entry point {ep_name!r} must be a mapping, not {kind_of(raw)}', path)
            return {}
        out: dict[str, Parameter] = {}
        for pname, spec in raw.items():
            ppath = path + (pname,)
            if not isinstance(pname, str) or not pname:
                self.add('MLP019', f'parameter name must be a non-empty string, not {pname!r}', ppath, key=True)
                continue
            ptype, default = 'string', None
            if isinstance(spec, str):
                ptype = spec
                tpath = ppath
            elif isinstance(spec, dict):
                self.unknown_keys(spec, PARAM_KEYS, ppath, f'parameter {pname!r}')
                ptype = spec.get('type', 'string')
                default = spec.get('default')
                tpath = ppath + ('type',)
                if not isinstance(ptype, str):
                    self.add('MLP003', f'type of parameter {pname!r} must be a string, not {kind_of(ptype)}', tpath)
                    ptype = 'string'
            elif spec is None:
                tpath = ppath
            else:
                self.add('MLP003', f'parameter {pname!r} must be a type name or a mapping with type and default, '
                         f'not {kind_of(spec)}', ppath)
                continue
            ptype = PARAM_TYPE_ALIASES.get(ptype, ptype)
            if ptype not in PARAM_TYPES:
                hint = did_you_mean(ptype, PARAM_TYPES)
                self.add('MLP005', f'parameter {pname!r} has unknown type {ptype!r}{hint}; expected one of: '
                         + ', '.join(PARAM_TYPES), tpath)
                ptype = 'string'
            elif not default_parses(ptype, default):
                self.add('MLP006', f'default {default!r} of parameter {pname!r} is not a valid {ptype}',
                         ppath + ('default',))
            out[pname] = Parameter(pname, ptype, default, self.doc.key_pos.get(ppath, (0, 0)))
        return out

    def env(self, data: dict) -> EnvSpec:
        declared = self.declared_env(data, ())
        if declared is not None:
            return declared
        for name, kind in ((DEFAULT_PYTHON_ENV, 'python'), (DEFAULT_CONDA_ENV, 'conda')):
            if (self.directory / name).is_file():
                return EnvSpec(kind, self.directory / name, None, False)
        return EnvSpec('none')

    def declared_env(self, data: dict, prefix: tuple) -> EnvSpec | None:
        """The env ``data`` declares (the top level, ``prefix`` ``()``, or an entry point's mapping), else None.

        An entry point's keys are read and checked exactly like the top-level ones (paths relative to
        the project directory, anywhere inside the root); messages name them ``entry_points.<ep>.<key>``.
        """
        def label(key: str) -> str:
            return '.'.join([*map(str, prefix), key])

        # MLflow treats a falsy value as absent; an empty mapping or list (or 0) where a path or a
        # mapping belongs is still a mistake worth reporting, so only null and '' mean "absent" here.
        for key, expected, what in (('python_env', str, 'a path string'), ('conda_env', str, 'a path string'),
                                    ('docker_env', dict, 'a mapping with image, volumes, environment')):
            value = data.get(key)
            if value is not None and not value and not isinstance(value, expected):
                self.add('MLP003', f'{label(key)} must be {what}, not {kind_of(value)}', prefix + (key,))
        present = [k for k in ('docker_env', 'python_env', 'conda_env') if data.get(k)]
        if len(present) > 1:
            where = f' in entry point {prefix[-1]!r}' if prefix else ''
            self.add('MLP007', f'only one environment may be declared{where}, found: ' + ', '.join(present),
                     prefix + (present[1],), key=True)
        docker_raw = data.get('docker_env')
        if docker_raw:
            return EnvSpec('docker', None, self.docker(docker_raw, prefix), True)
        for key, kind in (('python_env', 'python'), ('conda_env', 'conda')):
            value = data.get(key)
            if not value:
                continue
            path = prefix + (key,)
            if not isinstance(value, str):
                self.add('MLP003', f'{label(key)} must be a path string, not {kind_of(value)}', path)
                return EnvSpec('none')
            from mlproj.safefile import find_root

            env_path, where = env_file_policy(self.directory, self.root or find_root(self.directory), value)
            if where == 'outside':
                self.add('MLP027', f'{label(key)} {value!r} points outside the repository (or checkout) root; a '
                         'project reads env files only from inside its source', path)
                return EnvSpec('none')
            if where == 'root':
                self.add('MLP026', f'{label(key)} {value!r} lies outside the project directory (in the same '
                         'repository): it works when the project is run from its repository, as in MLflow',
                         path)
            if not env_path.is_file():
                self.add('MLP011', f'{label(key)} file {value!r} does not exist in the project', path)
            return EnvSpec(kind, env_path, None, True)
        return None

    def databricks_spark_job(self, raw: Any) -> None:
        path = ('databricks_spark_job',)
        if not isinstance(raw, dict):
            self.add('MLP003', f'databricks_spark_job must be a mapping, not {kind_of(raw)}', path)
            return
        self.unknown_keys(raw, DATABRICKS_KEYS, path, 'databricks_spark_job')
        python_file = raw.get('python_file')
        if python_file is not None and not isinstance(python_file, str):
            self.add('MLP003', f'databricks_spark_job.python_file must be a string, not {kind_of(python_file)}',
                     path + ('python_file',))
        for key in ('parameters', 'python_libraries'):
            value = raw.get(key)
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                self.add('MLP003', f'databricks_spark_job.{key} must be a list of strings', path + (key,))

    def docker(self, raw: Any, prefix: tuple = ()) -> DockerSpec:
        path = prefix + ('docker_env',)
        what = '.'.join(map(str, path))
        if not isinstance(raw, dict):
            self.add('MLP003', f'{what} must be a mapping with image, volumes, environment, not {kind_of(raw)}',
                     path)
            return DockerSpec('')
        self.unknown_keys(raw, DOCKER_KEYS, path, what)
        image = raw.get('image')
        if not image or not isinstance(image, str):
            self.add('MLP008', f'{what} needs an image (a string such as "python:3.11-slim")',
                     path + ('image',) if 'image' in raw else path)
            image = ''
        volumes = raw.get('volumes') or []
        if not isinstance(volumes, list) or not all(isinstance(v, str) for v in volumes):
            self.add('MLP009', f'{what}.volumes must be a list of strings such as "/host/path:/container/path"',
                     path + ('volumes',))
            volumes = []
        environment: list[str | tuple[str, str]] = []
        env_raw = raw.get('environment') or []
        if not isinstance(env_raw, list):
            self.add('MLP010', f'{what}.environment must be a list of variable names or [name, value] pairs',
                     path + ('environment',))
            env_raw = []
        for i, item in enumerate(env_raw):
            if isinstance(item, str) and item:
                environment.append(item)
            elif (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and item[0]
                  and isinstance(item[1], (str, int, float)) and not isinstance(item[1], bool)):
                environment.append((item[0], str(item[1])))
            else:
                self.add('MLP010', f'{what}.environment entry {item!r} must be a variable name or a '
                         '[name, value] pair', path + ('environment', i))
        return DockerSpec(image, tuple(volumes), tuple(environment))


def parse_mlproject(text: str, directory: Path, label: str = 'MLproject', *, root: Path | None = None) -> Project:
    """Build a project from MLproject text; problems are returned as findings, never raised.

    ``root``: the repository or checkout root env files may be read from (default: the enclosing
    Git work tree, else ``directory``).
    """
    return analyse_mlproject(text, directory, label, root=root)[0]


def analyse_mlproject(text: str, directory: Path, label: str = 'MLproject', *,
                      root: Path | None = None) -> tuple[Project, Doc]:
    """``parse_mlproject`` plus the source positions of every key and value (for ``mlproj lint``)."""
    data, doc = parse_yaml(text)
    return Builder(directory, label, data, doc, root).build(), doc


def load_project(directory: str | os.PathLike[str], *, strict: bool = True,
                 root: str | os.PathLike[str] | None = None, refuse_lint_errors: bool = False) -> Project:
    """Load the project in ``directory`` (MLproject file or convention project).

    With ``strict`` (the default) the first finding ``mlproj run`` refuses raises ``SpecError`` with
    file:line:col; with ``refuse_lint_errors`` too (``mlproj run --strict``) that includes every
    finding lint reports as an error.  ``root`` is the checkout / repository root no project file
    may leave (default: the nearest directory holding ``.git``, else ``directory``); env files may
    live anywhere below it; it is kept as ``Project.root``.
    """
    from mlproj.safefile import find_root

    directory = Path(directory)
    if not directory.is_dir():
        raise SpecError('project directory does not exist', str(directory))
    root = Path(root) if root is not None else find_root(directory)
    mlproject, misnamed = find_mlproject(directory)
    extra: list[Finding] = []
    if mlproject is None:
        for n in misnamed:
            extra.append(Finding('MLP015', f'{n} is ignored: the project file must be named exactly '
                                 '"MLproject" (no extension)', 0, 0, str(directory / n)))
        project = Builder(directory, str(directory), {}, Doc(), root).build()
        project = Project(directory, None, {}, project.env, None, tuple(extra), {})
    else:
        raw = read_mlproject(mlproject, root)
        try:
            # utf-8-sig without its codec module: one leading BOM dropped (error offsets are
            # counted after it, as that codec counts them)
            text = (raw[3:] if raw.startswith(b'\xef\xbb\xbf') else raw).decode('utf-8')
        except UnicodeDecodeError as e:
            finding = Finding('MLP001', f'MLproject is not UTF-8 text (byte {e.start})', 0, 0, str(mlproject))
            if strict:
                raise SpecError(f'{finding.rule} {finding.message}', finding.where()) from None
            return Project(directory, None, {}, EnvSpec('none'), mlproject, (finding,), {}, root)
        project = parse_mlproject(text, directory, str(mlproject), root=root)
        findings = project.findings
        if 'mlproj:' in text and project.warnings:  # `# mlproj: disable=...` comments silence warnings
            from mlproj.suppress import parse_suppressions

            suppressions = parse_suppressions(text, str(mlproject))
            findings = tuple(f for f in findings if not suppressions.covers(f))
        project = Project(project.directory, project.name, project.entry_points, project.env, mlproject,
                          findings, project.data)
    # An entry point without a command fails only when it is the one being run (as in MLflow):
    # the other entry points of the file stay usable.  `mlproj lint` reports it either way.
    fatal = project.refused(strict=refuse_lint_errors)
    if strict and fatal:
        first = fatal[0]
        raise SpecError(f'{first.rule} {first.message}', first.where())
    return replace(project, root=root)
