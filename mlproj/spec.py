"""MLproject loading: file discovery, YAML with positions, the project model, convention projects.

``parse_mlproject`` never raises on bad content: it returns the project it could build plus a list
of ``Finding``s (rule ids from ``rules.py``).  ``load_project`` is the entry used by ``mlproj run``:
it raises ``SpecError`` on the first finding whose run-time effect is ``refuse`` (with
``refuse_lint_errors``, ``mlproj run --strict``, on every finding lint reports as an error) and
leaves the rest for the caller to print as warnings.  Where MLflow runs a dubious file (a duplicate
key: the last value wins; an unknown type: a string; an invalid typed default: passed as given; an
env file in a parent folder of the same repository) the model is built the way MLflow reads it.
The linter calls ``analyse_mlproject`` directly, so run and lint agree by construction.

Env file paths (``python_env: ../python_env.yaml``) may point anywhere inside the *root*: the
repository or checkout root the project comes from (``ResolvedSource.root``; for ``mlproj lint`` and
the Python API, the nearest enclosing Git work tree, else the project directory).  A path that leaves
the root lexically, or whose resolved target (symlinks followed) does, is MLP027 and refused.

An entry point may declare its own ``python_env`` / ``conda_env`` / ``docker_env`` (mlproj only:
``mlflow run`` ignores the key and uses the project's environment).  It is read and checked exactly
like the top-level keys and kept as ``EntryPoint.env``; ``Project.for_entry_point`` is the project
as that entry point runs it, which is what the run pipeline hands to env managers and backends.
"""
from __future__ import annotations

import difflib
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlproj.errors import SpecError, first_line
from mlproj.findings import Finding
from mlproj.rules import RULES

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

Pos = tuple[int, int]  # 1-based line, column


@dataclass(frozen=True)
class Parameter:
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
    name: str
    command: str | None
    parameters: dict[str, Parameter] = field(default_factory=dict)
    pos: Pos = (0, 0)
    script: bool = False  # a convention entry point (a .py / .sh file), not declared
    env: EnvSpec | None = None  # its own python_env / conda_env / docker_env (mlproj only); None: the project's


@dataclass(frozen=True)
class DockerSpec:
    image: str
    volumes: tuple[str, ...] = ()
    # each entry: a host variable name to copy, or a (name, value) pair
    environment: tuple[str | tuple[str, str], ...] = ()


@dataclass(frozen=True)
class EnvSpec:
    kind: str  # 'docker' | 'python' | 'conda' | 'none'
    path: Path | None = None
    docker: DockerSpec | None = None
    declared: bool = False  # named in MLproject rather than found by convention

    def as_dict(self) -> dict[str, Any]:
        return {'kind': self.kind, 'file': str(self.path) if self.path else None,
                'docker_image': self.docker.image if self.docker else None}


@dataclass(frozen=True)
class Project:
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
                command = _shell_for_scripts() + ' ' + shlex.quote(name)
            return EntryPoint(name=name, command=command, script=True)
        known = ', '.join(sorted(self.entry_points)) or 'none declared'
        hint = _did_you_mean(name, self.entry_points)
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


def _shell_for_scripts() -> str:
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


def _did_you_mean(word: str, candidates: Any) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f' (did you mean {close[0]!r}?)' if close else ''


# --------------------------------------------------------------------------------------------
# file discovery


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


# --------------------------------------------------------------------------------------------
# YAML with positions and duplicate-key detection


class _Doc:
    """The constructed document plus the position of every key and value, by path."""

    def __init__(self) -> None:
        self.key_pos: dict[tuple, Pos] = {}
        self.value_pos: dict[tuple, Pos] = {}
        self.value_end: dict[tuple, Pos] = {}
        self.findings: list[Finding] = []
        self.budget = _NODE_BUDGET
        self.merged: dict[int, list] = {}  # id(mapping node) -> its flattened merge pairs


# An MLproject has a few hundred nodes.  The budget is spent twice, and both times as the work
# happens: by the composer for every node and alias it creates (so a huge document stops early,
# not after it is all in memory), then by the constructor for every node it visits, aliases
# expanded and ``<<`` merge pairs included ("billion laughs", merge-key bombs).  mlproj flattens
# merges itself, so an old PyYAML whose ``flatten_mapping`` blows up is never asked to.
_NODE_BUDGET = 100_000
_MERGE_TAG = 'tag:yaml.org,2002:merge'


class _TooLarge(Exception):
    pass


def _mark(node: Any) -> Pos:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _end(node: Any) -> Pos:
    return (node.end_mark.line + 1, node.end_mark.column + 1)


def _spend(doc: _Doc, n: int = 1) -> None:
    doc.budget -= n
    if doc.budget < 0:
        raise _TooLarge(f'the document expands to more than {_NODE_BUDGET} nodes (aliases or << merges?)')


def _merge_pairs(node: Any, doc: _Doc, loader: Any, active: frozenset) -> list:
    """The (key node, value node) pairs ``<<`` keys of ``node`` bring in, YAML merge semantics:
    a key of the mapping itself wins over a merged one, and earlier merged mappings win over
    later ones.  Each mapping is flattened once (memoised); every pair considered costs budget."""
    import yaml

    cached = doc.merged.get(id(node))
    if cached is not None:
        _spend(doc, len(cached))
        return cached
    if id(node) in active:
        raise _TooLarge('a << merge refers to a mapping that contains it (recursive structure)')
    inner = active | {id(node)}
    sources = []
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE_TAG:
            continue
        if isinstance(value_node, yaml.MappingNode):
            sources.append(value_node)
        elif isinstance(value_node, yaml.SequenceNode):
            for sub in value_node.value:
                if not isinstance(sub, yaml.MappingNode):
                    raise yaml.constructor.ConstructorError(
                        'while constructing a mapping', node.start_mark,
                        f'expected a mapping for merging, but found {sub.id}', sub.start_mark)
                sources.append(sub)
        else:
            raise yaml.constructor.ConstructorError(
                'while constructing a mapping', node.start_mark,
                f'expected a mapping or list of mappings for merging, but found {value_node.id}',
                value_node.start_mark)
    out: list = []
    seen: set = set()
    for source in sources:
        for key_node, value_node in _merge_pairs(source, doc, loader, inner) + [
                p for p in source.value if p[0].tag != _MERGE_TAG]:
            _spend(doc)
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = loader.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    continue
                seen.add(key)
            except TypeError:
                continue
            out.append((key_node, value_node))
    doc.merged[id(node)] = out
    return out


def _construct(node: Any, path: tuple, doc: _Doc, loader: Any, active: frozenset = frozenset()) -> Any:
    import yaml

    _spend(doc)
    doc.value_pos[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        if id(node) in active:
            raise _TooLarge('an alias refers to a mapping that contains it (recursive structure)')
        inner = active | {id(node)}
        out: dict = {}
        own = [(k, v) for k, v in node.value if k.tag != _MERGE_TAG]
        merged = _merge_pairs(node, doc, loader, active) if len(own) != len(node.value) else []
        own_keys = set()
        for key_node, _ in own:
            if isinstance(key_node, yaml.ScalarNode):
                try:
                    own_keys.add(loader.construct_object(key_node, deep=True))
                except TypeError:
                    pass
        for key_node, value_node in merged:
            key = loader.construct_object(key_node, deep=True)
            if key in own_keys:
                continue
            doc.key_pos[path + (key,)] = _mark(key_node)
            out[key] = _construct(value_node, path + (key,), doc, loader, inner)
        explicit: set = set()
        for key_node, value_node in own:
            if key_node.tag == 'tag:yaml.org,2002:value':
                key_node.tag = 'tag:yaml.org,2002:str'
            if not isinstance(key_node, yaml.ScalarNode):
                doc.findings.append(Finding('MLP003', 'mapping key must be a scalar', *_mark(key_node)))
                continue
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:  # e.g. a key tagged !!set
                doc.findings.append(Finding('MLP003', 'mapping key must be a scalar', *_mark(key_node)))
                continue
            if key in explicit:
                first = doc.key_pos.get(path + (key,), (0, 0))
                doc.findings.append(Finding(
                    'MLP002', f'duplicate key {key!r} (first defined at line {first[0]})', *_mark(key_node)))
            explicit.add(key)
            doc.key_pos[path + (key,)] = _mark(key_node)
            out[key] = _construct(value_node, path + (key,), doc, loader, inner)
        return out
    if isinstance(node, yaml.SequenceNode):
        if id(node) in active:
            raise _TooLarge('an alias refers to a list that contains it (recursive structure)')
        inner = active | {id(node)}
        return [_construct(item, path + (i,), doc, loader, inner) for i, item in enumerate(node.value)]
    doc.value_end[path] = _end(node)
    return loader.construct_object(node, deep=True)


_LOADERS: dict[str, Any] = {}


def _loader_class() -> Any:
    """A SafeLoader whose composer spends the node budget as it creates nodes.

    With libyaml (shipped in PyYAML's wheels) the C parser produces the events and PyYAML's
    Python composer, subclassed here, builds the nodes: the scanner and parser, where the time
    goes, stay in C.  Construction (and so every value's type) is the same SafeConstructor
    either way.
    """
    if _LOADERS:
        return _LOADERS['loader']
    import yaml
    from yaml.composer import Composer
    from yaml.constructor import SafeConstructor
    from yaml.resolver import Resolver

    class _BudgetComposer(Composer):
        _budget = _NODE_BUDGET

        def compose_node(self, parent: Any, index: Any) -> Any:
            self._budget -= 1
            if self._budget < 0:
                raise _TooLarge(f'the document has more than {_NODE_BUDGET} nodes')
            return super().compose_node(parent, index)

    try:
        from yaml.cyaml import CParser as c_parser
    except ImportError:  # PyYAML built without libyaml
        c_parser = None
    if c_parser is not None:
        class _Loader(_BudgetComposer, c_parser, SafeConstructor, Resolver):  # type: ignore[misc, valid-type]
            libyaml = True

            def __init__(self, stream: Any) -> None:
                c_parser.__init__(self, stream)
                Composer.__init__(self)
                SafeConstructor.__init__(self)
                Resolver.__init__(self)
    else:
        class _Loader(_BudgetComposer, yaml.SafeLoader):  # type: ignore[no-redef]
            libyaml = False
    _LOADERS['loader'] = _Loader
    return _Loader


def parse_yaml(text: str) -> tuple[Any, _Doc]:
    """Parse one YAML document keeping positions; syntax errors become an MLP001 finding."""
    import yaml

    doc = _Doc()
    loader = None
    try:
        loader = _loader_class()(text)  # the reader rejects control characters here already
        node = loader.get_single_node()
        if node is None:
            return None, doc
        return _construct(node, (), doc, loader), doc
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = (e.problem or e.context or 'invalid YAML').strip()
        doc.findings.append(Finding('MLP001', f'YAML syntax error: {problem}', line, col))
        return None, doc
    except yaml.YAMLError as e:  # ReaderError (bad bytes) has a position but no mark
        position = getattr(e, 'position', None)
        line, col = 0, 0
        if isinstance(position, int) and position >= 0:
            before = text.encode('utf-8', 'surrogatepass')[:position].decode('utf-8', 'replace') \
                if getattr(loader, 'libyaml', False) else text[:position]
            line = before.count('\n') + 1
            col = len(before) - (before.rfind('\n') + 1) + 1
        doc.findings.append(Finding('MLP001', f'YAML error: {first_line(e, 200)}', line, col))
        return None, doc
    except _TooLarge as e:
        doc.findings.append(Finding('MLP001', f'YAML cannot be read: {e}', 0, 0))
        return None, doc
    except (ValueError, TypeError, OverflowError, RecursionError) as e:
        # e.g. an out-of-range timestamp, or pathological nesting
        doc.findings.append(Finding('MLP001', f'YAML value cannot be read: {first_line(e, 200)}', 0, 0))
        return None, doc
    finally:
        if loader is not None:
            loader.dispose()


# --------------------------------------------------------------------------------------------
# placeholders in commands

_PLACEHOLDER_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_\-]*$')


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
            if j != -1 and _PLACEHOLDER_NAME.match(inner):
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


# --------------------------------------------------------------------------------------------
# the model


def default_parses(ptype: str, value: Any) -> bool:
    """Whether a YAML default is acceptable for its declared type."""
    if value is None:
        return True
    if ptype == 'int':
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        if isinstance(value, float):
            return value.is_integer()
        return _parses_int(str(value))
    if ptype == 'float':
        if isinstance(value, bool):
            return False
        if isinstance(value, (int, float)):
            return True
        return _parses_float(str(value))
    if ptype == 'bool':
        return isinstance(value, bool) or str(value).strip().lower() in BOOL_WORDS
    if isinstance(value, (dict, list)):
        return False
    return True


BOOL_WORDS = {'true': True, 'false': False, '1': True, '0': False, 'yes': True, 'no': False,
              'on': True, 'off': False, 'y': True, 'n': False}


# ASCII digits only: Python's int()/float() also take Arabic-Indic, fullwidth and other Unicode
# digits ('١٢٣', '１２'), which a program parsing its argv in another language would not.  float
# keeps what float() and every common parser accept: exponents, inf / infinity / nan (any case).
_INT_RE = re.compile(r'[+-]?[0-9]+')
_FLOAT_RE = re.compile(r'[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)',
                       re.IGNORECASE)
_ASCII_SPACE = ' \t\n\r\f\v'


def _parses_int(text: str) -> bool:
    return _INT_RE.fullmatch(text.strip(_ASCII_SPACE)) is not None


def _parses_float(text: str) -> bool:
    return _FLOAT_RE.fullmatch(text.strip(_ASCII_SPACE)) is not None


class _Builder:
    def __init__(self, directory: Path, path_label: str, data: Any, doc: _Doc, root: Path | None = None) -> None:
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
                hint = _did_you_mean(str(key), allowed)
                self.add('MLP004', f'unknown key {key!r} in {what}{hint}; expected one of: '
                         + ', '.join(allowed), path + (key,), key=True)

    def build(self) -> Project:
        data = self.data
        if data is None:
            if not any(f.rule == 'MLP001' for f in self.findings):
                self.add('MLP013', 'MLproject is empty; running as a convention project', ())
            data = {}
        if not isinstance(data, dict):
            self.add('MLP003', f'MLproject must be a mapping of keys, not {_kind(data)}', ())
            data = {}
        self.unknown_keys(data, TOP_LEVEL_KEYS, (), 'MLproject')
        name = data.get('name')
        if name is not None and (not isinstance(name, (str, int, float)) or isinstance(name, bool)):
            hint = ' (YAML reads yes/no/true/false/on/off as booleans: quote the name)' if isinstance(
                name, bool) else ''
            self.add('MLP003', f'name must be a string, not {_kind(name)}{hint}', ('name',))
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
            self.add('MLP003', f'entry_points must be a mapping of name to entry point, not {_kind(raw)}', path)
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
                         f'not {_kind(ep)}', ep_path)
                continue
            self.unknown_keys(ep, ENTRY_POINT_KEYS, ep_path, f'entry point {ep_name!r}')
            params = self.parameters(ep_name, ep.get('parameters'), ep_path + ('parameters',))
            command = ep.get('command')
            script = False
            if command is not None and not isinstance(command, (str, int, float)) or isinstance(command, bool):
                self.add('MLP003', f'command of entry point {ep_name!r} must be a string, not {_kind(command)}',
                         ep_path + ('command',))
                command = None
            elif command is not None:
                command = str(command)
                for ph in dict.fromkeys(placeholders(command)):
                    if ph not in params:
                        hint = _did_you_mean(ph, params)
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
        prog = 'python' if ext == '.py' else _shell_for_scripts()
        literal = f'{prog} {shlex.quote(ep_name)}'.replace('{', '{{').replace('}', '}}')
        args = [f' --{pname} {{{pname}}}' for pname in params if _PLACEHOLDER_NAME.match(pname)]
        return literal + ''.join(args)

    def parameters(self, ep_name: str, raw: Any, path: tuple) -> dict[str, Parameter]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.add('MLP003', f'parameters of entry point {ep_name!r} must be a mapping, not {_kind(raw)}', path)
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
                    self.add('MLP003', f'type of parameter {pname!r} must be a string, not {_kind(ptype)}', tpath)
                    ptype = 'string'
            elif spec is None:
                tpath = ppath
            else:
                self.add('MLP003', f'parameter {pname!r} must be a type name or a mapping with type and default, '
                         f'not {_kind(spec)}', ppath)
                continue
            ptype = PARAM_TYPE_ALIASES.get(ptype, ptype)
            if ptype not in PARAM_TYPES:
                hint = _did_you_mean(ptype, PARAM_TYPES)
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
                self.add('MLP003', f'{label(key)} must be {what}, not {_kind(value)}', prefix + (key,))
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
                self.add('MLP003', f'{label(key)} must be a path string, not {_kind(value)}', path)
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
            self.add('MLP003', f'databricks_spark_job must be a mapping, not {_kind(raw)}', path)
            return
        self.unknown_keys(raw, DATABRICKS_KEYS, path, 'databricks_spark_job')
        python_file = raw.get('python_file')
        if python_file is not None and not isinstance(python_file, str):
            self.add('MLP003', f'databricks_spark_job.python_file must be a string, not {_kind(python_file)}',
                     path + ('python_file',))
        for key in ('parameters', 'python_libraries'):
            value = raw.get(key)
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                self.add('MLP003', f'databricks_spark_job.{key} must be a list of strings', path + (key,))

    def docker(self, raw: Any, prefix: tuple = ()) -> DockerSpec:
        path = prefix + ('docker_env',)
        what = '.'.join(map(str, path))
        if not isinstance(raw, dict):
            self.add('MLP003', f'{what} must be a mapping with image, volumes, environment, not {_kind(raw)}',
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


def _kind(value: Any) -> str:
    if value is None:
        return 'null'
    return {dict: 'a mapping', list: 'a list', str: 'a string', bool: 'a boolean', int: 'a number',
            float: 'a number'}.get(type(value), type(value).__name__)


def parse_mlproject(text: str, directory: Path, label: str = 'MLproject', *, root: Path | None = None) -> Project:
    """Build a project from MLproject text; problems are returned as findings, never raised.

    ``root``: the repository or checkout root env files may be read from (default: the enclosing
    Git work tree, else ``directory``).
    """
    return analyse_mlproject(text, directory, label, root=root)[0]


def analyse_mlproject(text: str, directory: Path, label: str = 'MLproject', *,
                      root: Path | None = None) -> tuple[Project, _Doc]:
    """``parse_mlproject`` plus the source positions of every key and value (for ``mlproj lint``)."""
    data, doc = parse_yaml(text)
    return _Builder(directory, label, data, doc, root).build(), doc


def locate_in_value(doc: _Doc, text: str, path: tuple, needle: str) -> Pos | None:
    """The 1-based position of ``needle`` inside the scalar at ``path``, when the source shows it verbatim."""
    start, end = doc.value_pos.get(path), doc.value_end.get(path)
    if not (start and end and text):
        return None
    lines = text.splitlines()
    for number in range(start[0], min(end[0], len(lines)) + 1):
        offset = lines[number - 1].find(needle, start[1] - 1 if number == start[0] else 0)
        if offset != -1:
            return number, offset + 1
    return None


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
        project = _Builder(directory, str(directory), {}, _Doc(), root).build()
        project = Project(directory, None, {}, project.env, None, tuple(extra), {})
    else:
        raw = read_mlproject(mlproject, root)
        try:
            text = raw.decode('utf-8-sig')
        except UnicodeDecodeError as e:
            finding = Finding('MLP001', f'MLproject is not UTF-8 text (byte {e.start})', 0, 0, str(mlproject))
            if strict:
                raise SpecError(f'{finding.rule} {finding.message}', finding.where()) from None
            return Project(directory, None, {}, EnvSpec('none'), mlproject, (finding,), {}, root)
        project = parse_mlproject(text, directory, str(mlproject), root=root)
        findings = project.findings
        if 'mlproj:' in text and project.warnings:  # `# mlproj: disable=...` comments silence warnings
            from mlproj.lint.suppress import parse_suppressions

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
