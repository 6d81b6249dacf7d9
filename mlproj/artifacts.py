"""Run artifacts mlproj writes and reads itself (the environment lock), without importing MLflow on the hot path.

Where the bytes go depends on the run's ``artifact_uri`` (as MLflow's artifact repositories decide):

* a local path or ``file:`` URI (the sqlite default ``./mlruns/<exp>/<run>/artifacts``, a server
  started with a local ``--default-artifact-root``): the file is copied there, as MLflow's
  ``LocalArtifactRepository`` does;
* ``mlflow-artifacts:`` (a tracking server proxying artifacts, ``--serve-artifacts``) when the
  tracker is a ``RestTracker``: one ``PUT`` / ``GET`` on the server's artifact service,
  ``{tracking URI}/api/2.0/mlflow-artifacts/artifacts/<URI path>/<artifact path>`` (the URL
  ``MlflowArtifactsRepository.resolve_uri`` builds; a host in the URI replaces the tracking
  server's), with the tracker's credentials and TLS settings;
* anything else (s3, gs, dbfs, a proxied store behind a file tracking store): ``MlflowClient``'s
  ``log_artifact`` / ``download_artifacts``, imported only then.
"""
from __future__ import annotations

import shutil
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

from mlproj.errors import TrackingError, first_line

MAX_READ_BYTES = 16 << 20


def _local_dir(artifact_uri: str) -> Path | None:
    if artifact_uri.startswith('file:'):
        parsed = urllib.parse.urlsplit(artifact_uri)
        if parsed.netloc not in ('', 'localhost'):
            return None
        return Path(urllib.parse.unquote(parsed.path))
    if '://' in artifact_uri or ':' in artifact_uri.split('/')[0]:
        return None
    return Path(artifact_uri) if artifact_uri else None


def _proxy_url(tracker: Any, artifact_uri: str, artifact_path: str) -> str | None:
    """The artifact-service URL of ``artifact_path`` for an ``mlflow-artifacts:`` URI on a REST tracker."""
    if not artifact_uri.startswith('mlflow-artifacts:') or not hasattr(tracker, '_headers'):
        return None
    track = urllib.parse.urlsplit(tracker.uri)
    uri = urllib.parse.urlsplit(artifact_uri)
    path = '/'.join(p for p in (track.path.strip('/'), 'api/2.0/mlflow-artifacts/artifacts', uri.path.strip('/'),
                                artifact_path.strip('/')) if p)
    return urllib.parse.urlunsplit((track.scheme, uri.netloc or track.netloc, '/' + urllib.parse.quote(path), '', ''))


def _http(tracker: Any, method: str, url: str, data: bytes | None) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    headers = dict(tracker._headers(False))
    headers['Accept'] = '*/*'
    if data is not None:
        headers['Content-Type'] = 'text/plain'
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=getattr(tracker, 'timeout', 30.0),
                                    context=tracker._ssl_context()) as resp:
            return resp.status, resp.read(MAX_READ_BYTES + 1)
    except urllib.error.HTTPError as e:
        return e.code, b''
    except (urllib.error.URLError, OSError) as e:
        from mlproj.tracking import redact_uri

        raise TrackingError(f'cannot reach the artifact service: {getattr(e, "reason", None) or e}',
                            redact_uri(tracker.uri)) from None


def log_file(tracker: Any, run_id: str, local: Path, artifact_path: str, artifact_uri: str | None = None) -> None:
    """Store the file ``local`` as the run's artifact ``artifact_path`` (``dir/name``)."""
    from mlproj.tracking import redact_uri

    if artifact_uri is None:
        known = getattr(tracker, 'known_artifact_uri', None)   # RestTracker: saves a round trip
        artifact_uri = (known(run_id) if callable(known) else None) or tracker.get_run(run_id).artifact_uri
    target = _local_dir(artifact_uri)
    if target is not None:
        dest = target / artifact_path
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, dest)
        except OSError as e:
            raise TrackingError(f'cannot write artifact {artifact_path}: {e.strerror}', str(dest)) from None
        return
    url = _proxy_url(tracker, artifact_uri, artifact_path)
    if url is not None:
        status, _ = _http(tracker, 'PUT', url, local.read_bytes())
        if status >= 400:
            raise TrackingError(f'the artifact service refused {artifact_path} (HTTP {status})',
                                redact_uri(tracker.uri))
        return
    directory, _, name = artifact_path.rpartition('/')
    with tempfile.TemporaryDirectory(prefix='mlproj-artifact-') as tmp:
        copy = Path(tmp) / name
        shutil.copyfile(local, copy)
        try:
            _client(tracker).log_artifact(run_id, str(copy), artifact_path=directory or None)
        except Exception as e:
            raise TrackingError(f'logging artifact {artifact_path} failed: {first_line(e)}',
                                redact_uri(tracker.uri)) from None


def read_file(tracker: Any, run_id: str, artifact_path: str, artifact_uri: str | None = None) -> bytes | None:
    """The bytes of the run's artifact ``artifact_path``, or None when the run has no such artifact."""
    from mlproj.tracking import redact_uri

    if artifact_uri is None:
        artifact_uri = tracker.get_run(run_id).artifact_uri
    source = _local_dir(artifact_uri)
    if source is not None:
        try:
            with open(source / artifact_path, 'rb') as f:
                return f.read(MAX_READ_BYTES)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise TrackingError(f'cannot read artifact {artifact_path}: {e.strerror}', str(source)) from None
    url = _proxy_url(tracker, artifact_uri, artifact_path)
    if url is not None:
        status, body = _http(tracker, 'GET', url, None)
        if status == 404:
            return None
        if status >= 400:
            raise TrackingError(f'reading artifact {artifact_path} failed (HTTP {status})', redact_uri(tracker.uri))
        return body[:MAX_READ_BYTES]
    client = _client(tracker)
    directory, _, name = artifact_path.rpartition('/')
    try:
        listed = client.list_artifacts(run_id, directory or None)
        if not any(f.path == artifact_path for f in listed):
            return None
        with tempfile.TemporaryDirectory(prefix='mlproj-artifact-') as tmp:
            got = client.download_artifacts(run_id, artifact_path, tmp)
            with open(got, 'rb') as f:
                return f.read(MAX_READ_BYTES)
    except Exception as e:
        raise TrackingError(f'reading artifact {artifact_path} failed: {first_line(e)}',
                            redact_uri(tracker.uri)) from None


def _client(tracker: Any) -> Any:
    client = getattr(tracker, 'client', None)
    if client is not None and not isinstance(client, (str, bytes)):
        return client
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracker.uri)

