"""MLflow tracking: the tracking URI, experiments, runs, tags and terminal status.

Three implementations of one small ``Tracker`` interface:

* ``ClientTracker`` goes through MLflow's own ``MlflowClient`` and serves every store MLflow
  supports (sqlite, file, databricks, plugins).
* ``SqliteTracker`` (``mlproj/tracking_sqlite.py``) serves ``sqlite:///`` stores: mlproj's few rows
  written with ``sqlite3`` when the store's schema is one verified against MLflow (importing
  MLflow's SQLAlchemy store costs ~2.2 s), ``ClientTracker`` for everything else.
* ``RestTracker`` (``mlproj/tracking_rest.py``) serves ``http(s)://`` tracking servers through
  MLflow's documented REST API (``/api/2.0/mlflow/...``).  Importing the MLflow client costs
  ~1 s, which would be most of a short run's overhead; a run needs a handful of JSON requests.

Both honour MLflow's client variables (MLFLOW_TRACKING_TOKEN, _USERNAME/_PASSWORD,
_INSECURE_TLS, _SERVER_CERT_PATH).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlproj.errors import BadArgumentError, TrackingError, first_line
from mlproj.tags import FINISHED, RUNNING, SCHEDULED


@dataclass
class RunRecord:
    """An MLflow run as mlproj reads it back: ids, status, tags, params, metrics, times."""

    run_id: str
    experiment_id: str
    status: str
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    artifact_uri: str = ''
    start_time: int | None = None   # milliseconds since the epoch (filled by searches)
    end_time: int | None = None


class Tracker(Protocol):
    uri: str

    def resolve_experiment(self, name: str | None, experiment_id: str | None) -> str: ...
    def create_run(self, experiment_id: str, tags: dict[str, str], run_name: str | None) -> str: ...
    def log_params(self, run_id: str, params: dict[str, str]) -> None: ...
    def set_tags(self, run_id: str, tags: dict[str, str]) -> None: ...
    def get_run(self, run_id: str) -> RunRecord: ...
    def set_status(self, run_id: str, status: str) -> None: ...
    # searches: the stale-run check (RUNNING), the run cache (FINISHED), `runs gc`, nested runs
    def search_with_tag(self, experiment_ids: list[str], key: str, value: str, status: str = RUNNING
                        ) -> list[RunRecord]: ...
    def search_running_with_tag(self, experiment_ids: list[str], key: str, value: str) -> list[RunRecord]: ...
    def list_experiment_ids(self) -> list[str]: ...
    def child_runs(self, experiment_id: str, parent_run_id: str) -> list[tuple[str, dict[str, str]]]: ...


# --------------------------------------------------------------------------------------------
# tracking URI


def _has_mlruns_data(cwd: Path) -> bool:
    mlruns = cwd / 'mlruns'
    try:
        with os.scandir(mlruns) as entries:
            return any(e.is_dir() and e.name.isdigit() and os.path.lexists(os.path.join(e.path, 'meta.yaml'))
                       for e in entries)
    except OSError:
        return False


def absolutize(uri: str, cwd: str | Path) -> str:
    """Make a local store URI absolute so a child with another cwd writes to the same store."""
    cwd = Path(cwd)
    if uri.startswith('sqlite:///') and not uri.startswith('sqlite:////'):
        rest = uri[len('sqlite:///'):]
        if rest and not rest.startswith(':memory:'):
            return 'sqlite:///' + str((cwd / rest).resolve())
        return uri
    if '://' not in uri and ':' not in uri.split('/')[0]:
        return Path(cwd, uri).resolve().as_uri()  # a plain path means a file store
    if uri.startswith('file:') and not uri.startswith('file:/'):
        return Path(cwd, uri[len('file:'):]).resolve().as_uri()
    return uri


def resolve_tracking_uri(explicit: str | None = None, cwd: str | Path | None = None) -> str:
    """The tracking URI MLflow would use (explicit, then MLFLOW_TRACKING_URI, then MLflow's default)."""
    cwd = Path(cwd or os.getcwd())
    uri = explicit or os.environ.get('MLFLOW_TRACKING_URI')
    if not uri:
        uri = './mlruns' if _has_mlruns_data(cwd) else 'sqlite:///mlflow.db'
    return absolutize(uri, cwd)


def child_env_for(uri: str) -> dict[str, str]:
    """Variables a child process needs to reach the same store."""
    env = {'MLFLOW_TRACKING_URI': uri}
    if uri.startswith('file:'):
        env['MLFLOW_ALLOW_FILE_STORE'] = 'true'
    return env


def redact_uri(uri: str) -> str:
    from mlproj.source.local import strip_credentials

    return strip_credentials(uri)


def is_server_uri(uri: str) -> bool:
    """A tracking server's URI: ``get_tracker`` gives a ``RestTracker`` for it."""
    return uri.startswith(('http://', 'https://'))


def get_tracker(uri: str) -> Tracker:
    if is_server_uri(uri):
        from mlproj.tracking_rest import RestTracker

        return RestTracker(uri)
    if uri.startswith('sqlite:///'):
        from mlproj.tracking_sqlite import SqliteTracker

        return SqliteTracker(uri)
    return ClientTracker(uri)


def resolve_experiment_args(name: str | None, experiment_id: str | None) -> tuple[str | None, str | None]:
    if name and experiment_id:
        raise BadArgumentError('specify only one of --experiment-name and --experiment-id')
    if not name and not experiment_id:
        env_name = os.environ.get('MLFLOW_EXPERIMENT_NAME')
        env_id = os.environ.get('MLFLOW_EXPERIMENT_ID')
        if env_name and env_id:
            raise BadArgumentError('both MLFLOW_EXPERIMENT_NAME and MLFLOW_EXPERIMENT_ID are set; unset one')
        return env_name or None, env_id or None
    return name, experiment_id


def user() -> str:
    """The user MLflow records a run under (``mlflow.user``): ``getpass.getuser()``, as MLflow."""
    import getpass  # (termios with it) only when a run is created

    try:
        return getpass.getuser()
    except Exception:
        return 'unknown'


# --------------------------------------------------------------------------------------------
# MLflow client


class ClientTracker:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        if uri.startswith('file:'):
            os.environ.setdefault('MLFLOW_ALLOW_FILE_STORE', 'true')
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import logging

            # alembic/mlflow print migration chatter at INFO on first use of a sqlite store
            for name in ('alembic', 'mlflow.store.db.utils', 'mlflow.tracking.fluent'):
                logging.getLogger(name).setLevel(logging.WARNING)
            try:
                from mlflow.tracking import MlflowClient

                self._client = MlflowClient(tracking_uri=self.uri)
            except ModuleNotFoundError:
                raise  # not the store's fault: the CLI names the extra to install
            except Exception as e:
                raise TrackingError(f'cannot open MLflow tracking store: {first_line(e, 500)}',
                                    redact_uri(self.uri)) from e
        return self._client

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TrackingError:
            raise
        except Exception as e:
            raise TrackingError(f'{what} failed: {first_line(e, 500)}', redact_uri(self.uri)) from e

    def resolve_experiment(self, name: str | None, experiment_id: str | None) -> str:
        client = self.client
        if experiment_id is not None:
            exp = self._call('looking up experiment', _get_experiment_or_none, client, experiment_id)
            if exp is None:
                raise TrackingError(f'experiment id {experiment_id!r} does not exist', redact_uri(self.uri))
            return str(exp.experiment_id)
        if name:
            exp = self._call('looking up experiment', client.get_experiment_by_name, name)
            if exp is not None:
                if exp.lifecycle_stage == 'deleted':
                    raise TrackingError(f'experiment {name!r} is deleted; restore it or choose another name')
                return str(exp.experiment_id)
            return str(self._call('creating experiment', client.create_experiment, name))
        return self._default_experiment()

    # a file store whose directory is new gets its default experiment from the first client that
    # opens it; waiting for it is bounded by this
    DEFAULT_EXPERIMENT_WAIT = 2.0

    def _default_experiment(self) -> str:
        """MLflow's default experiment, ``'0'``.  A file store creates it when its first client opens
        a new store directory; another process opening the same directory at that moment finds the
        directory before ``0/meta.yaml`` (MLflow's FileStore race: ``mlflow run`` fails there too,
        in ``create_run``).  On a file store a missing or half-written ``'0'`` is therefore waited
        for, up to ``DEFAULT_EXPERIMENT_WAIT`` seconds; any other store answers at once."""
        deadline = time.monotonic() + (self.DEFAULT_EXPERIMENT_WAIT if self.uri.startswith('file:') else 0.0)
        while True:
            try:
                return self.resolve_experiment(None, '0')
            except TrackingError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)

    def create_run(self, experiment_id: str, tags: dict[str, str], run_name: str | None) -> str:
        run = self._call('creating run', self.client.create_run, experiment_id, tags=tags, run_name=run_name)
        return run.info.run_id

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        if not params:
            return
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._call('logging parameters', self.client.log_batch, run_id, params=items[i:i + 100])

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        if not tags:
            return
        from mlflow.entities import RunTag

        self._call('setting tags', self.client.log_batch, run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def get_run(self, run_id: str) -> RunRecord:
        run = self._call(f'reading run {run_id}', self.client.get_run, run_id)
        return RunRecord(run.info.run_id, str(run.info.experiment_id), run.info.status, dict(run.data.tags),
                         dict(run.data.params), dict(run.data.metrics), run.info.artifact_uri)

    def set_status(self, run_id: str, status: str) -> None:
        self._call('ending run', self.client.set_terminated, run_id, status=status)

    def child_runs(self, experiment_id: str, parent_run_id: str) -> list[tuple[str, dict[str, str]]]:
        """(run id, tags) of the runs whose ``mlflow.parentRunId`` is ``parent_run_id`` (first 1000)."""
        runs = self._call('searching runs', self.client.search_runs, [experiment_id],
                          filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'", max_results=1000)
        return [(r.info.run_id, dict(r.data.tags)) for r in runs]

    # -- searching (stale runs, mlproj.stale): kept apart from the run's hot path --------------
    def search_with_tag(self, experiment_ids: list[str], key: str, value: str, status: str = RUNNING
                        ) -> list[RunRecord]:
        """Runs of ``experiment_ids`` with ``status`` whose tag ``key`` equals ``value``, newest first."""
        flt = f"attributes.status = '{status}' and tags.`{key}` = '{value}'"
        out: list[RunRecord] = []
        token = None
        for _ in range(100):
            page = self._call('searching runs', self.client.search_runs, list(experiment_ids), flt,
                              max_results=1000, page_token=token)
            out += [RunRecord(r.info.run_id, str(r.info.experiment_id), r.info.status, dict(r.data.tags),
                              start_time=r.info.start_time, end_time=r.info.end_time) for r in page]
            token = getattr(page, 'token', None)
            if not token:
                break
        return out

    def search_running_with_tag(self, experiment_ids: list[str], key: str, value: str) -> list[RunRecord]:
        return self.search_with_tag(experiment_ids, key, value, RUNNING)

    def list_experiment_ids(self) -> list[str]:
        """Ids of every active experiment."""
        out: list[str] = []
        token = None
        for _ in range(100):
            page = self._call('listing experiments', self.client.search_experiments, max_results=1000,
                              page_token=token)
            out += [str(e.experiment_id) for e in page]
            token = getattr(page, 'token', None)
            if not token:
                break
        return out


def _get_experiment_or_none(client: Any, experiment_id: str) -> Any:
    try:
        return client.get_experiment(experiment_id)
    except Exception as e:
        text = str(e)
        if any(m in text for m in ('RESOURCE_DOES_NOT_EXIST', 'does not exist', 'No Experiment',
                                   'Could not find experiment')):  # the last: MLflow's file store
            return None
        raise


def end_run_if_running(tracker: Tracker, run_id: str, status: str) -> None:
    """Record a terminal status unless the child already ended the run itself."""
    try:
        current = tracker.get_run(run_id).status
    except TrackingError:
        current = RUNNING
    if current in (RUNNING, SCHEDULED):
        tracker.set_status(run_id, status)


DEFAULT_TRACKING_RETRY_SECONDS = 30.0


def tracking_retry_seconds() -> float:
    """How long recording a run's end is retried (``MLPROJ_TRACKING_RETRY_SECONDS``, default 30)."""
    from mlproj.settings import env_value

    return max(0.0, float(env_value('MLPROJ_TRACKING_RETRY_SECONDS')))


def record_terminal_status(tracker: Tracker, run_id: str, status: str, *, retry_seconds: float | None = None,
                           sleep: Any = time.sleep) -> str | None:
    """Record a backend's final status for ``run_id``; FINISHED only when the project's code has not
    ended the run itself.

    The run is over when this is called, so a store that fails (a tracking server restarting, a
    locked database) is retried with exponential backoff (0.5 s doubling, at most 5 s apart) for
    ``retry_seconds`` (``MLPROJ_TRACKING_RETRY_SECONDS``, default 30 s; one request's own timeout
    can add to it).  Returns None once recorded, else the problem: the caller exits with the
    tracking exit code and says how the run's command ended."""
    budget = tracking_retry_seconds() if retry_seconds is None else retry_seconds
    deadline = time.monotonic() + budget
    delay = 0.5
    while True:
        try:
            if status == FINISHED:
                end_run_if_running(tracker, run_id, status)
            else:
                tracker.set_status(run_id, status)
            return None
        except Exception as e:
            last = e
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sleep(min(delay, remaining))
        delay = min(delay * 2, 5.0)
    return f'could not record status {status} for run {run_id} (retried for {budget:g} s): {last}'
