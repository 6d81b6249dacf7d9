"""databricks-sdk access for the databricks backend: the client, error mapping, bounded retries, uploads.

Every SDK call goes through ``Workspace.call``: 401/403 become one ``BackendError`` line, 5xx are
retried with backoff within ``retry_timeout_seconds`` (the SDK itself retries 429/503 and
connection errors within the same bound), and known secrets are replaced by ``***`` in messages.
``UploadTarget`` uploads a file once to DBFS, a Unity Catalog volume (Files API) or workspace files.
"""
from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from mlproj.backends._databricks_config import Settings
from mlproj.errors import BackendError, first_line

WORKSPACE_IMPORT_LIMIT = 10 * 1024 * 1024



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
                raise BackendError(self.scrub(f'Databricks {verb} (HTTP {code}) while {what}: {_error_line(e)}'),
                                   self.host) from None
            except (errors.InternalError, errors.DeadlineExceeded, errors.TemporarilyUnavailable,
                    errors.TooManyRequests) as e:
                if retry and time.monotonic() + delay < deadline:
                    print(self.scrub(f'mlproj: warning: {what}: {_error_line(e)}; retrying in {delay:.1f} s'),
                          file=sys.stderr, flush=True)
                    time.sleep(delay)
                    delay = min(delay * 2, 10.0)
                    continue
                raise BackendError(self.scrub(f'{what} failed: {_describe(e)}'), self.host) from None
            except errors.DatabricksError as e:
                raise BackendError(self.scrub(f'{what} failed: {_describe(e)}'), self.host) from None
            except TimeoutError as e:
                raise BackendError(self.scrub(f'{what}: no answer after {self.settings.retry_timeout_seconds} s '
                                              f'of retries ({_error_line(e.__cause__ or e)})'), self.host) from None
            except OSError as e:  # requests' connection errors are OSErrors
                raise BackendError(self.scrub(f'{what}: cannot reach the workspace: {_error_line(e)}'),
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
        text = _error_line(e)
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


def _error_line(e: BaseException) -> str:
    """``errors.first_line``, except that urllib3's retry wrapper is reduced to its errno."""
    text = str(e).strip() or type(e).__name__
    errno = re.search(r'\[Errno -?\d+\] [^"\')]+', text)  # urllib3's nested connection errors
    if errno and 'Max retries exceeded' in text:
        return errno.group(0).strip()
    return first_line(e, 400)


def _describe(e: Any) -> str:
    code = getattr(e, 'error_code', None)
    text = _error_line(e)
    return f'{code}: {text}' if code and code not in text else text


# --------------------------------------------------------------------------------------------
# uploads


class UploadTarget:
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


class DbfsUpload(UploadTarget):
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


class VolumeUpload(UploadTarget):
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


class WorkspaceFilesUpload(UploadTarget):
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


def upload_target(ws: Workspace, upload_dir: str) -> UploadTarget:
    if upload_dir.startswith('dbfs:'):
        return DbfsUpload(ws)
    if upload_dir.startswith('/Volumes/'):
        return VolumeUpload(ws)
    return WorkspaceFilesUpload(ws)




def launcher_source() -> bytes:
    return Path(__file__).with_name('_databricks_launcher.py').read_bytes()
