"""mlproj's settings: one table (:data:`SETTINGS`) of every ``MLPROJ_*`` variable and config key.

Each setting has a name, an environment variable and/or a config key, a type, a built-in default
and a meaning; README.md's "Settings" table is generated from it (``tests/unit/test_settings.py``
checks they match).  A value comes from the first of these that sets it:

1. the command line (the command passes what the user typed),
2. the environment variable,
3. the project file: ``mlproj.toml`` next to the MLproject, then ``[tool.mlproj]`` in the
   ``pyproject.toml`` there (key by key; only when the project URI is a local directory, and only
   keys marked ``project``, see below),
4. the user file: ``$XDG_CONFIG_HOME/mlproj/config.toml`` (an absolute ``XDG_CONFIG_HOME`` only),
   else ``~/.config/mlproj/config.toml``,
5. the built-in default.

What a project file may set.  A project file travels with the project: it may be a pull request's
checkout that the pre-commit hook or the GitHub Action runs (DESIGN.md, threat model).  So it may
only set what changes how the project's own code is run and recorded, never *where* mlproj sends
the run or which credentials it uses: the env manager, the experiment name, ``reuse`` and a
sweep's ``max-parallel`` are allowed (the project's code can log to any experiment and use any
environment anyway).  The tracking URI (a redirected tracking store would receive the user's
``MLFLOW_TRACKING_TOKEN``/password with the run), the backend and backend configs (a Databricks
host, a cluster, a Kubernetes namespace: the user's credentials and money), the cache directory and
the color policy are user-file-or-environment only; a project file that sets one is an error
naming the file and line.  A Git URI's checkout is never read for settings at all: the run would
have to clone before knowing its own options, and nothing in a remote repository is trusted to.

Variables without a config key (timeouts, size bounds, credentials, ...) are read through
:func:`env_value` everywhere (``tests/unit/test_settings.py`` fails on a direct ``os.environ`` read
of an ``MLPROJ_*`` name), except in the Databricks launcher, a standalone script that runs where
mlproj may not be installed.

Stdlib only and cheap to import; config files are parsed on first use (``tomllib``, ``tomli`` on
Python 3.10) and cached by path, size and mtime.  A bad config file is one line naming
``file:line`` and exit 64 (:class:`ConfigFileError`).
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from mlproj.errors import BadArgumentError

ENV_MANAGERS = ('local', 'uv', 'virtualenv', 'conda')  # == mlproj.request.ENV_MANAGERS (a test checks)
COLORS = ('auto', 'always', 'never')
_TRUE = ('1', 'true', 'yes', 'on')
_FALSE = ('0', 'false', 'no', 'off')


class Setting(NamedTuple):
    name: str                  # the config key (dotted) when there is one, else the variable
    env: str | None            # environment variable
    type: str                  # bool int float str path choice table names
    default: Any
    meaning: str
    key: str | None = None     # config file key, e.g. 'run.env-manager' ([run] env-manager = ...)
    project: bool = False      # a project file may set it
    choices: tuple[str, ...] = ()
    secret: bool = False       # never shown by `mlproj config show`


def _s(env: str, type_: str, default: Any, meaning: str, **kw: Any) -> Setting:
    return Setting(kw.pop('key', None) or env, env, type_, default, meaning, **kw)


SETTINGS: tuple[Setting, ...] = (
    # -- config keys (also in a file) --
    Setting('run.env-manager', None, 'choice', None,
            'env manager of `run`/`sweep` without --env-manager (none: automatic, see "Which manager runs")',
            key='run.env-manager', project=True, choices=ENV_MANAGERS),
    Setting('run.backend', None, 'str', 'local', 'backend of `run`/`sweep` without -b', key='run.backend'),
    Setting('run.backend-config', None, 'table', None,
            'backend config per backend name (`[run.backend-config.databricks]`), used when -b names it '
            'and -c is not given', key='run.backend-config'),
    Setting('run.experiment-name', 'MLFLOW_EXPERIMENT_NAME', 'str', None,
            'experiment without --experiment-name/--experiment-id (and without MLFLOW_EXPERIMENT_ID); '
            'none: the Default experiment (id 0)', key='run.experiment-name', project=True),
    Setting('run.tracking-uri', 'MLFLOW_TRACKING_URI', 'str', None,
            'tracking URI without --tracking-uri (none: ./mlflow.db, or ./mlruns when it has runs)',
            key='run.tracking-uri'),
    Setting('run.reuse', 'MLPROJ_REUSE', 'bool', False,
            '`run`/`sweep` behave as with --reuse unless --force is given', key='run.reuse', project=True),
    Setting('sweep.max-parallel', 'MLPROJ_MAX_PARALLEL', 'int', 1, 'points a sweep runs at once without '
            '--max-parallel', key='sweep.max-parallel', project=True),
    Setting('cache.dir', 'MLPROJ_CACHE_DIR', 'path', None,
            "mlproj's cache dir: clone mirrors, environments (none: $XDG_CACHE_HOME/mlproj or ~/.cache/mlproj)",
            key='cache.dir'),
    Setting('color', None, 'choice', 'auto', 'color policy without --color (below NO_COLOR and FORCE_COLOR)',
            key='color', choices=COLORS),
    # -- environment only --
    _s('MLPROJ_ENV_MANAGER', 'choice', None, "set by mlproj for the project's processes: a nested run "
       '(MLFLOW_RUN_ID set too) without --env-manager uses the same manager', choices=ENV_MANAGERS),
    _s('MLPROJ_DEBUG', 'bool', False, 'show tracebacks for errors (same as --debug)'),
    _s('MLPROJ_QUIET', 'bool', False, "print only the project's output and mlproj's errors (same as -q/--quiet)"),
    _s('MLPROJ_VERBOSE', 'bool', False, "show installers' full output and Git detail (same as --verbose)"),
    _s('MLPROJ_PASS_ENV', 'names', '', "comma-separated variables passed to the project's processes despite "
       'the policy (same as --pass-env)'),
    _s('MLPROJ_ENV_ROOT', 'path', None, 'where environments are stored (none: <cache dir>/envs)'),
    _s('MLPROJ_UV', 'path', None, "uv executable to use instead of the uv package's"),
    _s('MLPROJ_CONTAINER_ENGINE', 'str', None, 'docker, podman or a path (none: the first found)'),
    _s('MLPROJ_CONTAINER_INIT', 'str', '1', '`0`: do not pass --init to the container engine'),
    _s('MLPROJ_MAX_FILE_BYTES', 'int', 1 << 20, 'size bound of MLproject, env and requirement files'),
    _s('MLPROJ_MAX_LOCK_BYTES', 'int', 64 << 20, 'size bound of uv.lock'),
    _s('MLPROJ_ZIP_MAX_BYTES', 'int', 4 << 30, 'bound of a .zip project source once extracted'),
    _s('MLPROJ_GIT_TIMEOUT', 'float', 15.0, 'seconds to connect to a Git server'),
    _s('MLPROJ_GIT_FULL_CLONE', 'bool', False, 'clone full histories instead of depth 1'),
    _s('MLPROJ_SPARSE_CHECKOUT', 'bool', False, '#subfolder checkouts are sparse (cone mode)'),
    _s('MLPROJ_ALLOW_FILE_SUBMODULES', 'bool', False, 'allow submodules with local (file) URLs'),
    _s('MLPROJ_LOCK_TIMEOUT', 'float', 600.0, 'seconds to wait for a clone cache lock'),
    _s('MLPROJ_STALE_CHECK', 'bool', True, 'end runs left RUNNING by a dead launcher before a run'),
    _s('MLPROJ_TRACKING_RETRY_SECONDS', 'float', 30.0, "seconds recording a run's end is retried"),
    _s('MLPROJ_KILL_GRACE', 'float', 10.0, 'seconds between SIGTERM and SIGKILL when a local run is cancelled'),
    _s('MLPROJ_CANCEL_TIMEOUT', 'float', 60.0, 'seconds a remote run is given to end after a cancel'),
    _s('MLPROJ_LOST_TIMEOUT', 'float', 120.0, 'seconds a remote engine may be unreachable before the run is '
       'marked FAILED'),
    _s('MLPROJ_LOG_DRAIN_TIMEOUT', 'float', 10.0, "seconds to copy the tail of a remote run's log"),
    _s('MLPROJ_SLURM_SHARED_DIR', 'path', None, 'Slurm: directory visible from the compute nodes (none: '
       '~/.mlproj/slurm)'),
    _s('MLPROJ_PROJECTS_DIR', 'path', None, 'Databricks: where the launcher extracts projects'),
    _s('MLPROJ_DATABRICKS_FUSE_ROOT', 'path', None, 'Databricks: root of the /dbfs and /Volumes mounts'),
    _s('MLPROJ_GITHUB_WRITE_INTERVAL', 'float', 1.0, 'seconds between GitHub API writes (the Action)'),
    _s('MLPROJ_GIT_TOKEN', 'str', None, 'HTTPS Git token', secret=True),
    _s('MLPROJ_GIT_USERNAME', 'str', None, 'user name for MLPROJ_GIT_TOKEN (none: the URL\'s or x-access-token)'),
    _s('MLPROJ_SSH_KEY', 'path', None, 'SSH private key for Git sources'),
    _s('MLPROJ_SSH_KEY_PASSPHRASE', 'str', None, 'passphrase of MLPROJ_SSH_KEY', secret=True),
    _s('MLPROJ_SSH_STRICT_HOST_KEY_CHECKING', 'bool', True, 'refuse SSH hosts not in known_hosts'),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
BY_ENV: dict[str, Setting] = {s.env: s for s in SETTINGS if s.env}
BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS if s.key}


class ConfigFileError(BadArgumentError):
    """A config file that does not parse or sets an unknown, forbidden or ill-typed key (exit 64)."""


class Resolved(NamedTuple):
    setting: Setting
    value: Any
    source: str        # 'cli', 'env', 'project', 'user', 'default'
    where: str | None  # the variable or the file


# --------------------------------------------------------------------------------------------
# environment values


def parse_env(setting: Setting, raw: str | None) -> tuple[bool, Any]:
    """(set, value) of a variable's text; unset, empty or unparseable text is (False, None), so the
    next layer applies (as before this module: a bad number meant the default)."""
    if raw is None:
        return False, None
    text = raw.strip()
    if not text:
        return False, None
    t = setting.type
    if t == 'bool':
        low = text.lower()
        if low in _TRUE:
            return True, True
        if low in _FALSE:
            return True, False
        return False, None
    if t == 'int':
        if not (text.isascii() and re.fullmatch(r'[+-]?\d+', text)):
            return False, None
        return True, int(text, 10)
    if t == 'float':
        try:
            value = float(text)
        except ValueError:
            return False, None
        return (True, value) if value == value else (False, None)  # not NaN
    if t == 'choice':
        return (True, text) if text in setting.choices else (False, None)
    if t == 'names':
        return True, text
    return True, raw


def env_value(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """The value of a setting from its environment variable, else its built-in default."""
    setting = BY_ENV.get(name) or BY_NAME[name]
    ok, value = parse_env(setting, (os.environ if environ is None else environ).get(setting.env or ''))
    return value if ok else setting.default


# --------------------------------------------------------------------------------------------
# files


def user_config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    xdg = env.get('XDG_CONFIG_HOME')
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path(env.get('HOME') or Path.home()) / '.config'
    return base / 'mlproj' / 'config.toml'


def project_config_paths(project_dir: str | os.PathLike[str]) -> list[Path]:
    """The project files of a local project directory, highest precedence first (existing ones only)."""
    d = Path(project_dir)
    return [p for p in (d / 'mlproj.toml', d / 'pyproject.toml') if p.is_file()]


def local_project_dir(uri: str | None, cwd: str | os.PathLike[str] | None = None) -> Path | None:
    """The directory of a local project URI (a path to an existing directory), else None (Git URIs,
    archives, ``#subfolder`` forms: their files are not read for settings)."""
    if not uri or '://' in uri or '#' in uri or re.match(r'^[\w.-]+@[\w.-]+:', uri):
        return None
    p = Path(cwd or '.') / Path(uri).expanduser()
    return p if p.is_dir() else None


_cache: dict[tuple[str, int, int, bool], dict[str, tuple[Any, int | None]]] = {}


def _toml():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib


def _line_of(text: str, leaf: str) -> int | None:
    """The line of the first ``leaf = ...`` (also dotted: ``run.leaf = ...``) or table header naming
    ``leaf``: good enough to point at a bad key (tomllib keeps no positions)."""
    assign = re.compile(r'^\s*(?:[\w"\'-]+\s*\.\s*)*["\']?' + re.escape(leaf) + r'["\']?\s*=')
    header = re.compile(r'^\s*\[\[?\s*([^\]]+?)\s*\]')
    for i, line in enumerate(text.splitlines(), 1):
        if assign.match(line):
            return i
        m = header.match(line)
        if m and leaf in [part.strip().strip('"\'') for part in m.group(1).split('.')]:
            return i
    return None


def _check_type(setting: Setting, value: Any) -> str | None:
    """None when ``value`` (from TOML) fits the setting, else what was expected."""
    t = setting.type
    if t == 'bool':
        return None if isinstance(value, bool) else 'true or false'
    if t == 'int':
        return None if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 'an integer >= 1'
    if t == 'float':
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else 'a number'
    if t == 'choice':
        return None if value in setting.choices else 'one of ' + ', '.join(setting.choices)
    if t == 'table':
        ok = isinstance(value, dict) and all(isinstance(v, dict) for v in value.values())
        return None if ok else 'a table of tables, one per backend name ([run.backend-config.NAME])'
    return None if isinstance(value, str) and value else 'a non-empty string'


def load_file(path: Path, *, project: bool) -> dict[str, tuple[Any, int | None]]:
    """key -> (value, line) of one config file (``pyproject.toml``: its ``[tool.mlproj]``)."""
    try:
        st = path.stat()
    except OSError:
        return {}
    cache_key = (str(path), st.st_mtime_ns, st.st_size, project)
    if cache_key in _cache:
        return _cache[cache_key]
    try:
        if st.st_size > env_value('MLPROJ_MAX_FILE_BYTES'):
            raise ConfigFileError('config file too large', str(path))
        text = path.read_bytes().decode('utf-8')
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigFileError(f'cannot read config file: {getattr(e, "strerror", None) or e}', str(path)) from None
    toml = _toml()
    try:
        data = toml.loads(text)
    except toml.TOMLDecodeError as e:
        m = re.search(r'\(at line (\d+), column (\d+)\)', str(e))
        msg = re.sub(r'\s*\(at line \d+, column \d+\)', '', str(e))
        where = f'{path}:{m.group(1)}:{m.group(2)}' if m else str(path)
        raise ConfigFileError(f'invalid TOML: {msg}', where) from None
    prefix = ''
    if path.name == 'pyproject.toml':
        data = data.get('tool', {}).get('mlproj', {})
        prefix = 'tool.mlproj.'
        data = {k: v for k, v in data.items() if k != 'lint'}  # [tool.mlproj.lint]: mlproj.lint.config
    out: dict[str, tuple[Any, int | None]] = {}

    def walk(table: dict, dotted: str) -> None:
        for k, v in table.items():
            key = f'{dotted}{k}'
            line = _line_of(text, k)
            where = f'{path}:{line}' if line else str(path)
            setting = BY_KEY.get(key)
            if setting is None:
                if isinstance(v, dict) and any(s.startswith(key + '.') for s in BY_KEY):
                    walk(v, key + '.')
                    continue
                hint = ' (lint options go in pyproject.toml [tool.mlproj.lint])' if key.startswith('lint') else ''
                raise ConfigFileError(f'unknown setting {prefix}{key}{hint}', where)
            if project and not setting.project:
                raise ConfigFileError(f'{prefix}{key} cannot be set in a project file (it could redirect the '
                                      'run or its credentials); set it in the user file '
                                      f'{user_config_path()} or the environment', where)
            problem = _check_type(setting, v)
            if problem:
                raise ConfigFileError(f'{prefix}{key} must be {problem}, not {v!r}', where)
            out[key] = (v, line)

    walk(data, '')
    if len(_cache) > 64:
        _cache.clear()
    _cache[cache_key] = out
    return out


# --------------------------------------------------------------------------------------------
# resolution


def resolve(project_dir: str | os.PathLike[str] | None = None, cli: Mapping[str, Any] | None = None,
            environ: Mapping[str, str] | None = None, names: tuple[str, ...] | None = None) -> dict[str, Resolved]:
    """Every setting (or those in ``names``) with its value and where it came from.  ``cli`` maps a
    setting name to what the command line gave (None = not given)."""
    env = os.environ if environ is None else environ
    cli = cli or {}
    layers: list[tuple[str, Path, dict[str, tuple[Any, int | None]]]] = []
    if project_dir is not None:
        for p in project_config_paths(project_dir):
            layers.append(('project', p, load_file(p, project=True)))
    user = user_config_path(env)
    if user.is_file():
        layers.append(('user', user, load_file(user, project=False)))
    out: dict[str, Resolved] = {}
    for s in SETTINGS:
        if names is not None and s.name not in names:
            continue
        if cli.get(s.name) is not None:
            out[s.name] = Resolved(s, cli[s.name], 'cli', None)
            continue
        ok, value = parse_env(s, env.get(s.env)) if s.env else (False, None)
        if ok:
            out[s.name] = Resolved(s, value, 'env', s.env)
            continue
        for kind, path, values in layers:
            if s.key in values:
                value, line = values[s.key]
                out[s.name] = Resolved(s, value, kind, f'{path}:{line}' if line else str(path))
                break
        else:
            out[s.name] = Resolved(s, s.default, 'default', None)
    return out


def value(name: str, project_dir: str | os.PathLike[str] | None = None, cli: Any = None) -> Any:
    """One setting's value (see :func:`resolve`)."""
    return resolve(project_dir, {name: cli}, names=(name,))[name].value


class RunOptions(NamedTuple):
    env_manager: str | None
    backend: str
    backend_config: Any           # the -c text, a dict from a config file, or None
    experiment_name: str | None
    tracking_uri: str | None
    reuse: bool
    max_parallel: int


def run_options(uri: str, *, env_manager: str | None, backend: str | None, backend_config: str | None,
                experiment_name: str | None, experiment_id: str | None, tracking_uri: str | None,
                reuse: bool | None, max_parallel: int | None = None) -> RunOptions:
    """``mlproj run``/``sweep``'s options with the config defaults applied (CLI values as given)."""
    env = os.environ
    r = resolve(local_project_dir(uri), {'run.env-manager': env_manager, 'run.backend': backend,
                                          'run.reuse': reuse, 'sweep.max-parallel': max_parallel})
    backend = r['run.backend'].value
    config: Any = backend_config
    if config is None:
        tables = r['run.backend-config'].value or {}
        config = tables.get(backend)
    # The experiment and the tracking URI: CLI and MLflow's own variables are handled by
    # mlproj.tracking; a config value is passed on only when neither is there.
    if not (experiment_name or experiment_id or env.get('MLFLOW_EXPERIMENT_ID')):
        experiment_name = r['run.experiment-name'].value if r['run.experiment-name'].source != 'env' else None
    if tracking_uri is None and r['run.tracking-uri'].source in ('project', 'user'):
        tracking_uri = r['run.tracking-uri'].value
    return RunOptions(r['run.env-manager'].value, backend, config, experiment_name, tracking_uri,
                      bool(r['run.reuse'].value), int(r['sweep.max-parallel'].value))


def readme_table() -> str:
    """The Markdown table README.md's "Settings" section holds (a test compares them)."""
    def fmt(v: Any) -> str:
        if v is None or v == '':
            return '—'
        if isinstance(v, bool):
            return 'true' if v else 'false'
        return f'`{v}`'

    rows = ['| variable | config key | type | default | project file | meaning |', '|---|---|---|---|---|---|']
    for s in SETTINGS:
        type_ = ' \\| '.join(s.choices) if s.type == 'choice' else s.type
        rows.append(f"| {f'`{s.env}`' if s.env else '—'} | {f'`{s.key}`' if s.key else '—'} | {type_} | "
                    f"{fmt(s.default)} | {'yes' if s.project else 'no' if s.key else '—'} | "
                    f"{s.meaning.replace('|', chr(92) + '|')} |")
    return '\n'.join(rows)
