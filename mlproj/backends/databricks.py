"""The Databricks backend: run a project as a one-time Databricks job run, through databricks-sdk.

Flow of ``submit(launch)`` (the MLflow run already exists):

1. ``validate``: backend config shape, tracking URI, project kind -- no API call yet.
2. The project directory is packed into ``<sha256>.tar.gz`` (``mlproj.backends._pack``) and,
   with a small launcher script, uploaded once to ``upload_dir`` (DBFS by default, or a Unity
   Catalog volume, or workspace files); an existing file of the right size is not uploaded again.
3. ``jobs.submit`` with one ``spark_python_task`` that runs the launcher on a new cluster, an
   existing cluster or serverless compute.  mlproj is installed as a cluster library (or an
   environment dependency on serverless); the launcher extracts the archive and runs
   ``python -m mlproj run <dir> -e EP --run-id RUN -P k=v ... --env-manager M``, an argv list.
   The MLflow run id is the submit's idempotency token, so a retried submit never starts twice.
4. ``DatabricksSubmittedRun`` polls ``jobs.get_run`` adaptively (1 s, growing to 30 s), prints
   the run page URL and the final output, maps the terminal state to FINISHED/FAILED/KILLED and
   cancels the Databricks run on ``cancel()`` (Ctrl-C/SIGTERM in the CLI).

Auth and host come only from databricks-sdk's unified auth (env vars, ``~/.databrickscfg``
profiles, OAuth); tokens are never printed, tagged or placed in the job.  Every API error
becomes one ``BackendError`` line.
"""
from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mlproj.backends import FAILED, FINISHED, KILLED, RUNNING, SCHEDULED, Launch, SubmittedRun
from mlproj.errors import BackendError

TAG_RUN_URL = 'mlflow.databricks.runURL'
TAG_RUN_ID = 'mlflow.databricks.shellJobRunID'
TAG_JOB_ID = 'mlflow.databricks.shellJobID'
TAG_WEBAPP_URL = 'mlflow.databricks.webappURL'
TAG_ARCHIVE = 'mlproj.databricks.archive'

DEFAULT_UPLOAD_DIR = 'dbfs:/mlproj'
DEFAULT_RETRY_TIMEOUT = 300
DEFAULT_POLL_MAX = 30.0
POLL_FIRST = 1.0
POLL_GROWTH = 1.5
DEFAULT_SERVERLESS_ENV_VERSION = '2'
TASK_KEY = 'mlproj'
ENVIRONMENT_KEY = 'mlproj'
WORKSPACE_IMPORT_LIMIT = 10 * 1024 * 1024

# life_cycle_state values after which a run never changes again
TERMINAL_LIFE_CYCLES = ('TERMINATED', 'SKIPPED', 'INTERNAL_ERROR')
WAITING_LIFE_CYCLES = ('PENDING', 'QUEUED', 'BLOCKED', 'WAITING')

# backend-config keys that belong to mlproj (everything else of a plain spec is the new cluster)
OWN_KEYS = frozenset({
    'profile', 'host', 'new_cluster', 'existing_cluster_id', 'serverless', 'environment', 'cluster_spec',
    'libraries', 'timeout_seconds', 'run_name', 'mlproj_package', 'mlproj_wheel', 'upload_dir',
    'retry_timeout_seconds', 'http_timeout_seconds', 'poll_max_seconds',
})


# --------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class Settings:
    """The validated backend config."""
    compute: str                              # 'new', 'existing' or 'serverless'
    new_cluster: dict[str, Any] | None = None
    existing_cluster_id: str | None = None
    environment: dict[str, Any] | None = None  # serverless environment spec (without dependencies of ours)
    libraries: tuple[dict[str, Any], ...] = ()
    profile: str | None = None
    host: str | None = None
    timeout_seconds: int | None = None
    run_name: str | None = None
    mlproj_package: str = ''
    mlproj_wheel: Path | None = None
    upload_dir: str = DEFAULT_UPLOAD_DIR
    retry_timeout_seconds: int = DEFAULT_RETRY_TIMEOUT
    http_timeout_seconds: int | None = None
    poll_max_seconds: float = DEFAULT_POLL_MAX
    cluster_tracking_uri: str = 'databricks'
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _where(key: str) -> str:
    return f'backend config key {key!r}'


def _default_package() -> str:
    from mlproj import __version__

    return f'mlproj=={__version__}'


def tracking_profile(tracking_uri: str) -> str | None:
    """The profile named by ``databricks://PROFILE`` (None for plain ``databricks``)."""
    if tracking_uri == 'databricks':
        return None
    rest = tracking_uri[len('databricks://'):]
    profile = rest.split(':', 1)[0].strip('/')
    return profile or None


def cluster_tracking_uri(tracking_uri: str) -> str:
    """The tracking URI the job uses: its own workspace, or the same HTTP server."""
    if tracking_uri == 'databricks' or tracking_uri.startswith('databricks://'):
        return 'databricks'
    if tracking_uri.startswith(('http://', 'https://')):
        return tracking_uri
    from mlproj.tracking import redact_uri

    raise BackendError(
        "the databricks backend needs the MLflow tracking URI 'databricks', 'databricks://PROFILE' or an "
        'http(s) server that the cluster can reach; got local store ' + redact_uri(tracking_uri)
        + ' (set MLFLOW_TRACKING_URI=databricks or pass --tracking-uri)')


def _is_loopback(uri: str) -> bool:
    from urllib.parse import urlparse

    host = (urlparse(uri).hostname or '').lower()
    return host in ('localhost', '::1') or host.startswith('127.')


def _unknown_fields(given: Any, kept: Any, prefix: str) -> list[str]:
    """Keys of ``given`` that the SDK's dataclass dropped (unknown fields or invalid enum values)."""
    out: list[str] = []
    if isinstance(given, dict):
        kept = kept if isinstance(kept, dict) else {}
        for key, value in given.items():
            if key not in kept:
                out.append(f'{prefix}{key}')
            else:
                out.extend(_unknown_fields(value, kept[key], f'{prefix}{key}.'))
    elif isinstance(given, list) and isinstance(kept, list):
        for i, (a, b) in enumerate(zip(given, kept)):
            out.extend(_unknown_fields(a, b, f'{prefix}{i}.'))
    return out


def _strict(cls: Any, value: Any, key: str) -> dict[str, Any]:
    """Check ``value`` against an SDK dataclass: every field must survive ``from_dict``/``as_dict``."""
    if not isinstance(value, dict):
        raise BackendError(f'{key} must be a JSON object', 'backend config')
    try:
        kept = cls.from_dict(value).as_dict()
    except Exception as e:
        raise BackendError(f'{key} is not a valid {cls.__name__}: {e}', 'backend config') from None
    unknown = _unknown_fields(value, kept, '')
    if unknown:
        raise BackendError(f'{key}: unknown field or invalid value ' + ', '.join(repr(u.rstrip('.')) for u in unknown),
                           'backend config')
    return value


def _positive_int(config: Mapping[str, Any], key: str, *, allow_zero: bool = True) -> int | None:
    if key not in config or config[key] is None:
        return None
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (value == 0 and not allow_zero):
        raise BackendError(f'{key} must be a {"non-negative" if allow_zero else "positive"} integer, got {value!r}',
                           'backend config')
    return value


def _text(config: Mapping[str, Any], key: str) -> str | None:
    if key not in config or config[key] is None:
        return None
    value = config[key]
    if not isinstance(value, str) or not value.strip():
        raise BackendError(f'{key} must be a non-empty string, got {value!r}', 'backend config')
    return value.strip()


def normalize_upload_dir(value: str) -> str:
    """``dbfs:/x``, ``/dbfs/x``, ``/Volumes/c/s/v/x`` or ``/Workspace/x`` (normalised, no trailing slash)."""
    text = value.strip()
    if text.startswith('/dbfs/'):
        text = 'dbfs:/' + text[len('/dbfs/'):]
    if text.startswith('dbfs:'):
        rest = text[len('dbfs:'):]
        if not rest.startswith('/'):
            raise BackendError(f'upload_dir {value!r} must be absolute (dbfs:/path)', 'backend config')
        path = str(PurePosixPath('/' + rest.lstrip('/')))
        _no_dotdot(path, value)
        return 'dbfs:' + path
    if text.startswith('/Volumes/') or text.startswith('/Workspace/'):
        path = str(PurePosixPath(text))
        _no_dotdot(path, value)
        if path.startswith('/Volumes/') and len(PurePosixPath(path).parts) < 5:
            raise BackendError(f'upload_dir {value!r} must be inside a volume: /Volumes/<catalog>/<schema>/<volume>/...',
                               'backend config')
        return path
    raise BackendError(f'upload_dir {value!r} must start with dbfs:/, /Volumes/ or /Workspace/', 'backend config')


def _no_dotdot(path: str, value: str) -> None:
    if '..' in PurePosixPath(path).parts:
        raise BackendError(f'upload_dir {value!r} must not contain ..', 'backend config')


def parse_config(config: Mapping[str, Any], tracking_uri: str) -> Settings:
    """Validate the backend config; raises ``BackendError`` naming the key."""
    from databricks.sdk.service import compute

    if not isinstance(config, Mapping):
        raise BackendError('backend config must be a JSON object')
    if not config:
        raise BackendError('the databricks backend needs a backend config: a new cluster spec, '
                           '{"existing_cluster_id": "..."} or {"serverless": true} (-c FILE|JSON)')
    config = dict(config)
    warnings: list[str] = []
    target_uri = cluster_tracking_uri(tracking_uri)
    if target_uri.startswith('http') and _is_loopback(target_uri):
        warnings.append(f'the tracking server {target_uri} is on this machine; a Databricks cluster cannot reach it')

    if 'cluster_spec' in config:  # the shape of MLflow's documentation example
        wrapped = config.pop('cluster_spec')
        if not isinstance(wrapped, dict):
            raise BackendError('cluster_spec must be a JSON object', 'backend config')
        for key, value in wrapped.items():
            if key in config:
                raise BackendError(f'{key!r} is given both inside and outside cluster_spec', 'backend config')
            config[key] = value

    spec_keys = [k for k in config if k not in OWN_KEYS]
    chosen = [k for k in ('new_cluster', 'existing_cluster_id', 'serverless') if config.get(k) not in (None, False)]
    if spec_keys and chosen:
        raise BackendError('unknown key' + ('s ' if len(spec_keys) > 1 else ' ')
                           + ', '.join(repr(k) for k in spec_keys) + f' next to {chosen[0]!r}', 'backend config')
    if len(chosen) > 1:
        raise BackendError('choose one of new_cluster, existing_cluster_id and serverless; got '
                           + ' and '.join(chosen), 'backend config')

    new_cluster = existing = environment = None
    if spec_keys:  # a plain cluster spec, as `mlflow run -b databricks -c cluster-spec.json`
        compute_kind = 'new'
        new_cluster = _strict(compute.ClusterSpec, {k: config[k] for k in spec_keys}, 'new cluster spec')
    elif not chosen:
        raise BackendError('the backend config names no compute: give a new cluster spec, "new_cluster", '
                           '"existing_cluster_id" or "serverless": true', 'backend config')
    elif chosen[0] == 'new_cluster':
        compute_kind = 'new'
        new_cluster = _strict(compute.ClusterSpec, config['new_cluster'], 'new_cluster')
    elif chosen[0] == 'existing_cluster_id':
        compute_kind = 'existing'
        existing = _text(config, 'existing_cluster_id')
    else:
        if config['serverless'] is not True:
            raise BackendError(f"serverless must be true or false, got {config['serverless']!r}", 'backend config')
        compute_kind = 'serverless'
    if 'environment' in config and config['environment'] is not None:
        if compute_kind != 'serverless':
            raise BackendError('environment is only used with "serverless": true', 'backend config')
        environment = dict(_strict(compute.Environment, config['environment'], 'environment'))
    if compute_kind == 'serverless':
        environment = environment or {}
        if not environment.get('environment_version') and not environment.get('client'):
            environment['environment_version'] = DEFAULT_SERVERLESS_ENV_VERSION
    if compute_kind == 'new' and new_cluster is not None:
        for required in ('spark_version',):
            if required not in new_cluster and 'policy_id' not in new_cluster:
                raise BackendError(f'the new cluster spec needs {required!r}', 'backend config')

    libraries_raw = config.get('libraries') or []
    if not isinstance(libraries_raw, list):
        raise BackendError('libraries must be a JSON list', 'backend config')
    libraries = tuple(_strict(compute.Library, lib, f'libraries[{i}]') for i, lib in enumerate(libraries_raw))
    if compute_kind == 'serverless':
        for i, lib in enumerate(libraries):
            if set(lib) - {'pypi', 'whl', 'requirements'}:
                raise BackendError(f'libraries[{i}]: serverless compute installs only pypi, whl and requirements '
                                   'libraries', 'backend config')

    upload_dir = normalize_upload_dir(_text(config, 'upload_dir') or DEFAULT_UPLOAD_DIR)
    if compute_kind == 'serverless' and upload_dir.startswith('dbfs:'):
        raise BackendError('serverless compute cannot read DBFS; set "upload_dir" to a /Volumes/... or '
                           '/Workspace/... folder', 'backend config')

    wheel = None
    wheel_text = _text(config, 'mlproj_wheel')
    package = _text(config, 'mlproj_package')
    if wheel_text and package:
        raise BackendError('give only one of mlproj_package and mlproj_wheel', 'backend config')
    if wheel_text:
        wheel = Path(os.path.expanduser(wheel_text)).resolve()
        if not wheel.is_file() or not wheel.name.endswith('.whl'):
            raise BackendError(f'mlproj_wheel {wheel_text!r} is not a .whl file', 'backend config')

    poll_max = config.get('poll_max_seconds', DEFAULT_POLL_MAX)
    if isinstance(poll_max, bool) or not isinstance(poll_max, (int, float)) or not 0 < poll_max <= 600:
        raise BackendError(f'poll_max_seconds must be a number in (0, 600], got {poll_max!r}', 'backend config')

    profile = _text(config, 'profile')
    if tracking_uri.startswith('databricks://'):
        uri_profile = tracking_profile(tracking_uri)
        if profile and uri_profile and profile != uri_profile:
            raise BackendError(f'the tracking URI names profile {uri_profile!r} but the backend config names '
                               f'{profile!r}; the job logs to the workspace it runs in', 'backend config')
        profile = profile or uri_profile

    retry_timeout = _positive_int(config, 'retry_timeout_seconds', allow_zero=False)
    return Settings(
        compute=compute_kind, new_cluster=new_cluster, existing_cluster_id=existing, environment=environment,
        libraries=libraries, profile=profile, host=_text(config, 'host'),
        timeout_seconds=_positive_int(config, 'timeout_seconds'), run_name=_text(config, 'run_name'),
        mlproj_package=package or _default_package(), mlproj_wheel=wheel, upload_dir=upload_dir,
        retry_timeout_seconds=retry_timeout or DEFAULT_RETRY_TIMEOUT,
        http_timeout_seconds=_positive_int(config, 'http_timeout_seconds', allow_zero=False),
        poll_max_seconds=float(poll_max), cluster_tracking_uri=target_uri, warnings=tuple(warnings),
    )


def validate(request: Any, tracking_uri: str, project: Any = None) -> Settings:
    """Everything that can be checked before the MLflow run is created and before any API call."""
    if project is not None and getattr(getattr(project, 'env', None), 'kind', None) == 'docker':
        raise BackendError('docker projects cannot run on the databricks backend; use a python_env or conda_env '
                           'project, or no environment')
    return parse_config(request.backend_config or {}, tracking_uri)


# --------------------------------------------------------------------------------------------
# the workspace client and error mapping


class Workspace:
    """A databricks-sdk ``WorkspaceClient`` plus mlproj's error handling and bounded retries."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = _connect(settings)
        self.host = (self.client.config.host or '').rstrip('/')
        self._secrets = _secrets_of(self.client.config)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, '***')
        return text

    def call(self, what: str, fn: Callable[..., Any], *args: Any, retry: bool = True, **kwargs: Any) -> Any:
        """Run one SDK call. 5xx answers are retried (with backoff, within retry_timeout_seconds);
        429/503 and connection errors are already retried by the SDK within the same bound."""
        from databricks.sdk import errors

        deadline = time.monotonic() + self.settings.retry_timeout_seconds
        delay = 0.5
        while True:
            try:
                return fn(*args, **kwargs)
            except (errors.Unauthenticated, errors.PermissionDenied) as e:
                code = 401 if isinstance(e, errors.Unauthenticated) else 403
                verb = 'rejected the credentials' if code == 401 else 'denied permission'
                raise BackendError(self.scrub(f'Databricks {verb} (HTTP {code}) while {what}: {_first_line(e)}'),
                                   self.host) from None
            except (errors.InternalError, errors.DeadlineExceeded, errors.TemporarilyUnavailable,
                    errors.TooManyRequests) as e:
                if retry and time.monotonic() + delay < deadline:
                    print(self.scrub(f'mlproj: warning: {what}: {_first_line(e)}; retrying in {delay:.1f} s'),
                          file=sys.stderr, flush=True)
                    time.sleep(delay)
                    delay = min(delay * 2, 10.0)
                    continue
                raise BackendError(self.scrub(f'{what} failed: {_describe(e)}'), self.host) from None
            except errors.DatabricksError as e:
                raise BackendError(self.scrub(f'{what} failed: {_describe(e)}'), self.host) from None
            except TimeoutError as e:
                raise BackendError(self.scrub(f'{what}: no answer after {self.settings.retry_timeout_seconds} s '
                                              f'of retries ({_first_line(e.__cause__ or e)})'), self.host) from None
            except OSError as e:  # requests' connection errors are OSErrors
                raise BackendError(self.scrub(f'{what}: cannot reach the workspace: {_first_line(e)}'),
                                   self.host) from None


def _connect(settings: Settings) -> Any:
    import logging

    try:
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.config import Config
    except ImportError:
        raise BackendError('the databricks backend needs databricks-sdk: pip install "mlproj[databricks]"') from None
    from mlproj import __version__

    # host-metadata discovery logs a harmless warning on workspaces that do not serve it
    logging.getLogger('databricks.sdk').setLevel(logging.ERROR)
    kwargs: dict[str, Any] = {
        'retry_timeout_seconds': settings.retry_timeout_seconds,
        # a single PUT on the Files API instead of the experimental multipart/presigned-URL client
        'disable_experimental_files_api_client': True,
    }
    if settings.profile:
        kwargs['profile'] = settings.profile
    if settings.host:
        kwargs['host'] = settings.host
    if settings.http_timeout_seconds:
        kwargs['http_timeout_seconds'] = settings.http_timeout_seconds
    try:
        config = Config(product='mlproj', product_version=__version__, **kwargs)
        return WorkspaceClient(config=config)
    except Exception as e:
        text = _first_line(e)
        for secret in _env_secrets():
            text = text.replace(secret, '***')
        where = f'profile {settings.profile}' if settings.profile else None
        raise BackendError(f'cannot configure Databricks authentication: {text}', where) from None


def _env_secrets() -> list[str]:
    names = ('DATABRICKS_TOKEN', 'DATABRICKS_PASSWORD', 'DATABRICKS_CLIENT_SECRET', 'ARM_CLIENT_SECRET',
             'DATABRICKS_AZURE_CLIENT_SECRET', 'DATABRICKS_GOOGLE_CREDENTIALS')
    return [v for v in (os.environ.get(n) for n in names) if v and len(v) >= 4]


def _secrets_of(config: Any) -> list[str]:
    found = _env_secrets()
    for attr in ('token', 'password', 'client_secret', 'azure_client_secret', 'google_credentials'):
        value = getattr(config, attr, None)
        if isinstance(value, str) and len(value) >= 4:
            found.append(value)
    return found


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    errno = re.search(r'\[Errno -?\d+\] [^"\')]+', text)  # urllib3's nested connection errors
    if errno and 'Max retries exceeded' in text:
        return errno.group(0).strip()
    return text.splitlines()[0][:400]


def _describe(e: Any) -> str:
    code = getattr(e, 'error_code', None)
    text = _first_line(e)
    return f'{code}: {text}' if code and code not in text else text


# --------------------------------------------------------------------------------------------
# uploads


class Store:
    """Where archives go; ``api_path`` is what the Jobs API and the launcher are given."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def size(self, api_path: str) -> int | None: ...

    def put(self, api_path: str, local: Path) -> None: ...

    def upload_once(self, api_path: str, local: Path) -> bool:
        """Upload unless a file of the same size is already there. Returns True if uploaded."""
        size = local.stat().st_size
        existing = self.size(api_path)
        if existing == size:
            return False
        self.ws.call(f'uploading {api_path}', self.put, api_path, local)
        return True


class DbfsStore(Store):
    @staticmethod
    def _path(api_path: str) -> str:
        return api_path[len('dbfs:'):]

    def size(self, api_path: str) -> int | None:
        from databricks.sdk import errors

        def status() -> int | None:
            try:
                info = self.ws.client.dbfs.get_status(self._path(api_path))
            except errors.NotFound:
                return None
            return None if info.is_dir else int(info.file_size or 0)

        return self.ws.call(f'checking {api_path}', status)

    def put(self, api_path: str, local: Path) -> None:
        with open(local, 'rb') as f:
            self.ws.client.dbfs.upload(self._path(api_path), f, overwrite=True)


class VolumeStore(Store):
    def size(self, api_path: str) -> int | None:
        from databricks.sdk import errors

        def status() -> int | None:
            try:
                meta = self.ws.client.files.get_metadata(api_path)
            except errors.NotFound:
                return None
            return int(meta.content_length or 0)

        return self.ws.call(f'checking {api_path}', status)

    def put(self, api_path: str, local: Path) -> None:
        self.ws.client.files.create_directory(str(PurePosixPath(api_path).parent))
        with open(local, 'rb') as f:
            self.ws.client.files.upload(api_path, f, overwrite=True)


class WorkspaceFilesStore(Store):
    @staticmethod
    def _path(api_path: str) -> str:
        return api_path[len('/Workspace'):]

    def size(self, api_path: str) -> int | None:
        from databricks.sdk import errors

        def status() -> int | None:
            try:
                info = self.ws.client.workspace.get_status(self._path(api_path))
            except errors.NotFound:
                return None
            return None if info.size is None else int(info.size)

        return self.ws.call(f'checking {api_path}', status)

    def put(self, api_path: str, local: Path) -> None:
        from databricks.sdk.service.workspace import ImportFormat

        if local.stat().st_size > WORKSPACE_IMPORT_LIMIT:
            raise BackendError(f'{local.name} is larger than the 10 MB that workspace files accept; set "upload_dir" '
                               'to a /Volumes/... folder', api_path)
        path = self._path(api_path)
        self.ws.client.workspace.mkdirs(str(PurePosixPath(path).parent))
        with open(local, 'rb') as f:
            self.ws.client.workspace.upload(path, f, format=ImportFormat.AUTO, overwrite=True)


def store_for(ws: Workspace, upload_dir: str) -> Store:
    if upload_dir.startswith('dbfs:'):
        return DbfsStore(ws)
    if upload_dir.startswith('/Volumes/'):
        return VolumeStore(ws)
    return WorkspaceFilesStore(ws)


def launcher_source() -> bytes:
    return Path(__file__).with_name('_databricks_launcher.py').read_bytes()


# --------------------------------------------------------------------------------------------
# the job


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return 'True' if value else 'False'
    return value if isinstance(value, str) else str(value)


def launcher_parameters(launch: Launch, archive_path: str, settings: Settings) -> list[str]:
    """The launcher's argv: where the archive is, the job's MLflow variables, then `mlproj run` flags."""
    args = [archive_path,
            '--env', f'MLFLOW_TRACKING_URI={settings.cluster_tracking_uri}',
            '--env', f'MLFLOW_EXPERIMENT_ID={launch.experiment_id}',
            '--',
            '-e', launch.request.entry_point, '--run-id', launch.run_id, '--env-manager', launch.env_manager]
    for key, value in launch.request.parameters.items():
        args += ['-P', f'{key}={_param_text(value)}']
    return args


def _names_mlproj(lib: Mapping[str, Any]) -> bool:
    pypi = lib.get('pypi') or {}
    package = str(pypi.get('package', '')) if isinstance(pypi, dict) else ''
    if re.match(r'^\s*mlproj\b(?![-_.\w])', package, re.IGNORECASE):
        return True
    whl = str(lib.get('whl', ''))
    return PurePosixPath(whl).name.lower().startswith('mlproj-')


def job_spec(launch: Launch, settings: Settings, *, launcher_path: str, archive_path: str,
             wheel_path: str | None) -> dict[str, Any]:
    """The ``jobs/runs/submit`` body (as plain JSON)."""
    libraries = [dict(lib) for lib in settings.libraries]
    if not any(_names_mlproj(lib) for lib in libraries):
        libraries.append({'whl': wheel_path} if wheel_path else {'pypi': {'package': settings.mlproj_package}})
    task: dict[str, Any] = {
        'task_key': TASK_KEY,
        'spark_python_task': {
            'python_file': launcher_path,
            'parameters': launcher_parameters(launch, archive_path, settings),
        },
    }
    body: dict[str, Any] = {
        'run_name': settings.run_name or launch.request.run_name
        or f'mlproj run {launch.source.uri} -e {launch.request.entry_point}',
        'tasks': [task],
        'idempotency_token': launch.run_id,
    }
    if settings.compute == 'serverless':
        dependencies = list((settings.environment or {}).get('dependencies') or [])
        for lib in libraries:
            if 'pypi' in lib:
                dependencies.append(lib['pypi']['package'])
            elif 'whl' in lib:
                dependencies.append(lib['whl'])
            elif 'requirements' in lib:
                dependencies.append(f"-r {lib['requirements']}")
        spec = {**(settings.environment or {}), 'dependencies': dependencies}
        body['environments'] = [{'environment_key': ENVIRONMENT_KEY, 'spec': spec}]
        task['environment_key'] = ENVIRONMENT_KEY
    else:
        if settings.compute == 'new':
            task['new_cluster'] = dict(settings.new_cluster or {})
        else:
            task['existing_cluster_id'] = settings.existing_cluster_id
        task['libraries'] = libraries
    if settings.timeout_seconds is not None:
        body['timeout_seconds'] = settings.timeout_seconds
    return body


def _submit_job(ws: Workspace, body: dict[str, Any]) -> int:
    from databricks.sdk.service import jobs

    kwargs: dict[str, Any] = {
        'run_name': body['run_name'],
        'tasks': [jobs.SubmitTask.from_dict(t) for t in body['tasks']],
        'idempotency_token': body['idempotency_token'],
    }
    if 'environments' in body:
        kwargs['environments'] = [jobs.JobEnvironment.from_dict(e) for e in body['environments']]
    if 'timeout_seconds' in body:
        kwargs['timeout_seconds'] = body['timeout_seconds']
    # the idempotency token makes a retried submit safe: Databricks starts at most one run per token
    waiter = ws.call('submitting the job run', ws.client.jobs.submit, **kwargs)
    return int(waiter.run_id)


def _say(message: str) -> None:
    print(f'=== {message} ===', file=sys.stderr, flush=True)


def _warn(message: str) -> None:
    print(f'mlproj: warning: {message}', file=sys.stderr, flush=True)


def submit(launch: Launch) -> DatabricksSubmittedRun:
    from mlproj.backends._pack import pack, sha256_file

    settings = validate(launch.request, launch.tracking_uri, launch.project)
    for w in settings.warnings:
        _warn(w)
    import shutil
    import tempfile

    work = Path(tempfile.mkdtemp(prefix='mlproj-databricks-'))
    try:
        archive = pack(launch.project_dir, work)
        _say(f'Packed project {launch.project_dir} ({len(archive.files)} files, {archive.size} bytes) '
             f'as {archive.sha256[:12]}')
        launcher = work / 'launcher.py'
        launcher.write_bytes(launcher_source())

        ws = Workspace(settings)
        store = store_for(ws, settings.upload_dir)
        root = settings.upload_dir
        launcher_path = f'{root}/launchers/{sha256_file(launcher)}.py'
        archive_path = f'{root}/projects/{archive.name}'
        store.upload_once(launcher_path, launcher)
        wheel_path = None
        if settings.mlproj_wheel is not None:
            wheel_path = f'{root}/wheels/{sha256_file(settings.mlproj_wheel)}/{settings.mlproj_wheel.name}'
            if store.upload_once(wheel_path, settings.mlproj_wheel):
                _say(f'Uploaded {settings.mlproj_wheel.name} to {wheel_path}')
        if store.upload_once(archive_path, archive.path):
            _say(f'Uploaded project to {archive_path}')
        else:
            _say(f'Project already uploaded at {archive_path}')
    finally:
        shutil.rmtree(work, ignore_errors=True)
    launch.source.cleanup()  # everything the cluster needs is uploaded

    body = job_spec(launch, settings, launcher_path=launcher_path, archive_path=archive_path, wheel_path=wheel_path)
    _say(f"Running entry point {launch.request.entry_point} of project {launch.source.uri} on Databricks")
    db_run_id = _submit_job(ws, body)
    _say(f'Launched MLflow run as Databricks job run with ID {db_run_id}')
    submitted = DatabricksSubmittedRun(launch, ws, db_run_id, settings)
    try:
        submitted.describe(archive_path)
    except BaseException:
        submitted.abandon()
        raise
    return submitted


# --------------------------------------------------------------------------------------------
# the submitted run


@dataclass
class RunState:
    life_cycle: str
    result: str | None
    message: str
    task_run_id: int | None
    page_url: str | None
    job_id: int | None

    @property
    def terminal(self) -> bool:
        return self.life_cycle in TERMINAL_LIFE_CYCLES

    @property
    def label(self) -> str:
        return f'{self.life_cycle}' + (f' {self.result}' if self.result else '')


def mlflow_status(state: RunState) -> str:
    """Databricks run state -> MLflow run status."""
    if not state.terminal:
        return SCHEDULED if state.life_cycle in WAITING_LIFE_CYCLES else RUNNING
    if state.life_cycle == 'TERMINATED' and state.result == 'SUCCESS':
        return FINISHED
    if state.result == 'CANCELED':
        return KILLED
    return FAILED  # FAILED, TIMEDOUT, INTERNAL_ERROR, SKIPPED, UPSTREAM_*, EXCLUDED, ...


def _enum(value: Any) -> str | None:
    if value is None:
        return None
    return getattr(value, 'value', str(value))


class DatabricksSubmittedRun(SubmittedRun):
    """A Databricks job run carrying an MLflow run.  ``wait()`` polls; ``cancel()`` cancels it."""

    def __init__(self, launch: Launch, ws: Workspace, databricks_run_id: int, settings: Settings) -> None:
        super().__init__(launch.run_id)
        self.launch = launch
        self.ws = ws
        self.databricks_run_id = databricks_run_id
        self.settings = settings
        self.run_page_url: str | None = None
        self._status = RUNNING
        self._last: RunState | None = None
        self._cancel_signal: int | None = None
        self._done = threading.Event()
        self._wake = threading.Event()
        self._poll_lock = threading.Lock()
        self._finish_lock = threading.Lock()
        self._client_tags: dict[str, str] = {}

    # -- state ------------------------------------------------------------------------------
    def fetch(self) -> RunState:
        run = self.ws.call(f'reading Databricks run {self.databricks_run_id}', self.ws.client.jobs.get_run,
                           self.databricks_run_id)
        state = run.state
        task_run_id = None
        if run.tasks:
            task_run_id = run.tasks[0].run_id
        return RunState(
            life_cycle=_enum(state.life_cycle_state) if state else 'PENDING',
            result=_enum(state.result_state) if state else None,
            message=(state.state_message or '') if state else '',
            task_run_id=task_run_id, page_url=run.run_page_url, job_id=run.job_id,
        )

    def describe(self, archive_path: str) -> None:
        """First status: tags and the run page URL (MLflow's runURL/shellJobRunID/webappURL tags)."""
        state = self.fetch()
        self._last = state
        self.run_page_url = state.page_url
        tags = {TAG_RUN_ID: str(self.databricks_run_id), TAG_WEBAPP_URL: self.ws.host, TAG_ARCHIVE: archive_path}
        if state.page_url:
            tags[TAG_RUN_URL] = state.page_url
        if state.job_id is not None:
            tags[TAG_JOB_ID] = str(state.job_id)
        tracker = self.launch.tracker
        tracker.set_tags(self.run_id, tags)
        try:
            self._client_tags = dict(tracker.get_run(self.run_id).tags)
        except Exception:
            self._client_tags = {}
        if state.page_url:
            _say(f"Check the run's status at {state.page_url}")
        _say(f'Databricks run {self.databricks_run_id}: {state.label}')

    def abandon(self) -> None:
        """Submit succeeded but we cannot follow the run: cancel it rather than leave it unobserved."""
        try:
            self.ws.client.jobs.cancel_run(self.databricks_run_id)
        except Exception:
            pass

    def get_status(self) -> str:
        if self._done.is_set():
            return self._status
        return mlflow_status(self.fetch())

    # -- waiting ----------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            if self._poll_lock.acquire(blocking=False):
                try:
                    self._poll_until_done(deadline)
                finally:
                    self._poll_lock.release()
            else:
                self._done.wait(0.2)
        return self._status == FINISHED

    def _poll_until_done(self, deadline: float | None) -> None:
        interval = POLL_FIRST
        last_label = self._last.label if self._last else None
        while not self._done.is_set():
            try:
                state = self.fetch()
            except BackendError as e:
                self._finish(FAILED, None, error=e)
                raise
            self._last = state
            if state.label != last_label:
                _say(f'Databricks run {self.databricks_run_id}: {state.label}'
                     + (f' ({state.message})' if state.message and state.terminal else ''))
                last_label = state.label
                interval = POLL_FIRST
            if state.terminal:
                self._finish(mlflow_status(state), state)
                return
            wait_for = interval
            if deadline is not None:
                wait_for = min(wait_for, max(0.0, deadline - time.monotonic()))
                if wait_for <= 0:
                    return
            self._wake.wait(wait_for)
            self._wake.clear()
            interval = min(interval * POLL_GROWTH, self.settings.poll_max_seconds)

    def _finish(self, status: str, state: RunState | None, error: BaseException | None = None) -> None:
        with self._finish_lock:
            if self._done.is_set():
                return
            if state is not None:
                self._print_output(state)
            if self._cancel_signal is not None and status != FINISHED:
                status = KILLED
            if status == FINISHED:
                self.exit_code = 0
            elif status == KILLED:
                self.exit_code = 128 + (self._cancel_signal or signal.SIGTERM)
            else:
                self.exit_code = 1
            if state is not None and state.result == 'TIMEDOUT':
                _say(f'Databricks run {self.databricks_run_id} timed out after {self.settings.timeout_seconds} s')
            if error is not None:
                _warn(f'lost track of Databricks run {self.databricks_run_id}'
                      + (f' ({self.run_page_url})' if self.run_page_url else '')
                      + f'; MLflow run {self.run_id} is marked FAILED, the job may still be running')
            self._record(status)
            self.launch.source.cleanup()
            self._status = status
            self._done.set()

    def _record(self, status: str) -> None:
        tracker = self.launch.tracker
        try:
            if self._client_tags:
                # the cluster-side `mlproj run --run-id` re-tags the run from its own point of view
                # (extracted dir, backend local); the submitting side's provenance is the truth
                tracker.set_tags(self.run_id, {k: v for k, v in self._client_tags.items()
                                               if not k.startswith('mlflow.log-model')})
            if status == FINISHED:
                from mlproj.tracking import end_run_if_running

                end_run_if_running(tracker, self.run_id, status)
            else:
                tracker.set_status(self.run_id, status)
        except Exception as e:
            _warn(f'could not record status {status} for run {self.run_id}: {e}')

    def _print_output(self, state: RunState) -> None:
        if state.task_run_id is None:
            if state.message:
                print(f'mlproj: Databricks: {state.message}', file=sys.stderr, flush=True)
            return
        try:
            output = self.ws.call(f'reading the output of Databricks run {self.databricks_run_id}',
                                  self.ws.client.jobs.get_run_output, state.task_run_id)
        except BackendError as e:
            _warn(str(e))
            return
        if output.logs:
            sys.stdout.write(output.logs if output.logs.endswith('\n') else output.logs + '\n')
            sys.stdout.flush()
            if output.logs_truncated:
                _warn('the job output was truncated by Databricks; see the run page for the full log')
        if output.error:
            print(f'mlproj: Databricks error: {output.error}', file=sys.stderr)
        if output.error_trace:
            print(output.error_trace.rstrip('\n'), file=sys.stderr)
        if not output.error and state.message and mlflow_status(state) != FINISHED:
            print(f'mlproj: Databricks: {state.message}', file=sys.stderr)
        sys.stderr.flush()

    # -- cancellation -----------------------------------------------------------------------
    def cancel(self, sig: int = signal.SIGTERM) -> None:
        if self._done.is_set():
            return
        first = self._cancel_signal is None
        if first:
            self._cancel_signal = sig if sig != signal.SIGKILL else signal.SIGTERM
            try:
                self.ws.call(f'cancelling Databricks run {self.databricks_run_id}', self.ws.client.jobs.cancel_run,
                             self.databricks_run_id)
                _say(f'Cancel requested for Databricks run {self.databricks_run_id}')
            except BackendError as e:
                _warn(str(e))
        if sig == signal.SIGKILL or not first:
            # a second signal: do not wait for Databricks to confirm the cancellation
            self._finish(KILLED, None)
            self._wake.set()
            return
        self._wake.set()
        self.wait()
