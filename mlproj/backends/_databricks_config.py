"""Backend config of the databricks backend: shapes, strict checks against databricks-sdk's models.

``parse_config`` turns the ``-c`` JSON into ``Settings`` or raises one ``BackendError`` line naming
the key; it makes no API call.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mlproj.errors import BackendError

DEFAULT_UPLOAD_DIR = 'dbfs:/mlproj'
DEFAULT_RETRY_TIMEOUT = 300
DEFAULT_POLL_MAX = 30.0
DEFAULT_SERVERLESS_ENV_VERSION = '2'

# backend-config keys that belong to mlproj (everything else of a plain spec is the new cluster)
OWN_KEYS = frozenset({
    'profile', 'host', 'new_cluster', 'existing_cluster_id', 'serverless', 'environment', 'cluster_spec',
    'libraries', 'timeout_seconds', 'run_name', 'mlproj_package', 'mlproj_wheel', 'upload_dir',
    'retry_timeout_seconds', 'http_timeout_seconds', 'poll_max_seconds',
})



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

    return f'mlproj[run]=={__version__}'  # the run extra: the cluster runs `mlproj run`


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
    from mlproj.tracking import is_server_uri, redact_uri

    if is_server_uri(tracking_uri):
        if '@' in tracking_uri.split('://', 1)[1].split('/', 1)[0]:
            raise BackendError('the tracking URI carries credentials, which would be visible in the job spec; '
                               'give the cluster MLFLOW_TRACKING_USERNAME/PASSWORD or _TOKEN through spark_env_vars '
                               'with a {{secrets/scope/key}} reference', redact_uri(tracking_uri))
        return tracking_uri

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
        for i, (a, b) in enumerate(zip(given, kept, strict=False)):
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
            raise BackendError(f'upload_dir {value!r} must be inside a volume: '
                               '/Volumes/<catalog>/<schema>/<volume>/...',
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
    _env_file_inside(project)
    return parse_config(request.backend_config or {}, tracking_uri)


def _env_file_inside(project: Any) -> None:
    """Databricks receives the project directory only (``_pack``): an environment file above it
    (``python_env: ../python_env.yaml``, allowed locally inside the repository with MLP026) would be
    missing on the cluster, so it is refused here, before any run or upload exists."""
    import os

    from mlproj.safefile import inside

    env = getattr(project, 'env', None)
    path = getattr(env, 'path', None)
    if project is None or path is None:
        return
    if not inside(path, project.directory):
        key = 'conda_env' if getattr(env, 'kind', '') == 'conda' else 'python_env'
        raise BackendError(f'{key} {os.path.relpath(path, project.directory)} is outside the project directory, and '
                           'the databricks backend ships only that directory; move the file into it',
                           str(project.mlproject_path or project.directory))
