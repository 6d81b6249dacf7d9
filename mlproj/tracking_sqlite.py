"""A fast path for MLflow's default sqlite tracking store, guarded and proven against MLflow.

Why this is hand-written: on ``sqlite:///mlflow.db`` (MLflow's default store, the one every new
user gets) importing ``MlflowClient`` with its SQLAlchemy store costs ~2.2 s of a ~2.5 s
``mlproj run`` of a trivial entry point (``import mlflow.store.tracking.sqlalchemy_store`` alone:
2.23 s; ``import sqlite3`` + opening the file: 0.02 s; see ``benchmarks/results/run.md``).  mlproj
itself writes a handful of rows: it looks up or creates an experiment, creates a run with its tags,
logs parameters, adds tags and records the terminal status, and reads a run back for ``--run-id``
and ``mlproj reproduce``.  Those rows are written here with Python's ``sqlite3``, exactly as
MLflow's ``SqlAlchemyStore`` writes them (same columns, same defaults, the same run-name generator,
the same artifact locations, experiment ids from the same autoincrement, the same busy timeout).

How it is guarded (anything not verified goes to ``MlflowClient``, which then behaves, and fails,
exactly as MLflow does):

* the store: a plain ``sqlite:///<file>`` URI (no query string, not ``:memory:``) whose file exists
  and holds MLflow's tables; a missing or empty file goes to MLflow, which creates its schema
  once (mlproj says so: ``creating MLflow store ./mlflow.db``);
* the schema (``mlproj.mlflow_schema``): the store's alembic revision must be one the differential
  test verified, the head of the MLflow installed here, and every table and column touched here
  must exist.  A newer MLflow release therefore runs on ``MlflowClient`` (correct, slower) until
  its revision is verified and added;
* the environment: no workspaces (``MLFLOW_ENABLE_WORKSPACES``) and no server artifact root
  override, both of which change what MLflow writes;
* each call: only values MLflow accepts without question (keys of letters, digits, ``_ - . /``,
  values within MLflow's oldest limits, at most 100 params/tags per call, no conflicting param
  values, the ``mlflow.runName`` tag not changed afterwards); everything else, and every error
  path (unknown run or experiment, deleted ones), is delegated to ``MlflowClient`` so the user
  sees MLflow's own validation and messages.

Concurrency: MLflow opens sqlite with ``PRAGMA busy_timeout = 20000`` and foreign keys on; so
does this module, and every write is one ``BEGIN IMMEDIATE`` transaction, so the project's own
``mlflow.start_run()``/``log_metric`` writing into the same file from the child (or other
concurrent runs) wait for each other instead of failing.

``tests/tracking/test_sqlite_fast_path.py`` runs the same operations through this module and through
``MlflowClient`` on two copies of a store and compares them row by row and through MLflow's reads,
for the newest mlflow-skinny, the dev venv's MLflow (the full package's newest release) and the oldest
supported one (``.ci/setup``).

Size (~510 lines): the store's writes (``SqliteStore``) and the tracker that decides, call by call,
between them and ``MlflowClient`` (``SqliteTracker``) are one contract, proven together by that
test; splitting them would put the guard and what it guards in different files.
"""
from __future__ import annotations

import os
import re
import sqlite3
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from mlproj.errors import TrackingError
from mlproj.mlflow_schema import mlflow_package_dir, verify_schema
from mlproj.tags import FAILED, FINISHED, KILLED, RUN_NAME, RUN_STATUSES, RUNNING, SCHEDULED, USER

BUSY_TIMEOUT_S = 20.0  # MLflow's own: PRAGMA busy_timeout = 20000

# Conservative bounds: inside what every supported MLflow accepts (2.10: tag values 5000, param
# values 6000, keys 250, 100 params or tags per batch).  Outside them MlflowClient decides.
_KEY = re.compile(r'[A-Za-z0-9_.\-/]{1,250}')
MAX_TAG_VALUE = 5000
MAX_PARAM_VALUE = 6000
MAX_PER_CALL = 100
MAX_EXPERIMENT_NAME = 250


class Unsupported(Exception):
    """This call is not one the fast path has verified; MlflowClient must handle it."""


def sqlite_path(uri: str) -> str | None:
    """The file behind a plain ``sqlite:///`` URI, or None when the fast path does not apply."""
    if not uri.startswith('sqlite:///') or '?' in uri or '#' in uri:
        return None
    path = uri[len('sqlite:///'):]
    if not path or path.startswith(':memory:') or path.startswith('file:'):
        return None
    return path


def _key_ok(key: Any) -> bool:
    return (isinstance(key, str) and _KEY.fullmatch(key) is not None and '..' not in key and '//' not in key
            and not key.startswith('/') and not key.endswith('/'))


def _now_ms() -> int:
    return int(time.time() * 1000)


_name_generator: Any = None


def generate_run_name() -> str:
    """A run name from MLflow's own generator (``mlflow/utils/name_utils.py``, which imports only
    ``random`` and ``uuid``), loaded from the installed MLflow without importing ``mlflow``."""
    global _name_generator
    if _name_generator is None:
        import importlib.util

        mlflow_dir = mlflow_package_dir()
        if mlflow_dir is None:
            raise Unsupported('mlflow not installed')
        spec = importlib.util.spec_from_file_location('mlproj._mlflow_name_utils',
                                                      mlflow_dir / 'utils' / 'name_utils.py')
        if spec is None or spec.loader is None:
            raise Unsupported('no run name generator')
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
            _name_generator = module._generate_random_name
        except Exception as e:  # another MLflow layout: let MLflow name the run
            raise Unsupported(f'run name generator: {e}') from None
    return _name_generator()


def default_artifact_root(cwd: str | None = None) -> str:
    """``resolve_uri_if_local('./mlruns')`` as MLflow's sqlite store computes its default artifact
    root: the absolute POSIX path of ``mlruns`` in the current directory."""
    return Path(cwd or os.getcwd()).joinpath('mlruns').as_posix()


# --------------------------------------------------------------------------------------------
# the store


class SqliteStore:
    """mlproj's records in a verified MLflow sqlite store.  ``open`` returns None when the store is
    not one this module has verified; every method raises ``Unsupported`` for a call it must not
    answer itself."""

    def __init__(self, path: str, conn: sqlite3.Connection, revision: str, columns: dict[str, set[str]]) -> None:
        self.path = path
        self.conn = conn
        self.revision = revision
        self.experiment_columns = columns['experiments']
        self.lock = threading.Lock()  # one connection; backends may call from a watcher thread

    @classmethod
    def open(cls, uri: str) -> tuple[SqliteStore | None, str]:
        """(store, '') or (None, reason)."""
        path = sqlite_path(uri)
        if path is None:
            return None, 'not a plain sqlite file URI'
        if os.environ.get('MLFLOW_ENABLE_WORKSPACES', '').strip().lower() in ('1', 'true', 'yes'):
            return None, 'MLflow workspaces are enabled'
        if os.environ.get('_MLFLOW_SERVER_ARTIFACT_ROOT'):
            return None, 'a server artifact root is set'
        try:
            if os.path.getsize(path) == 0:
                return None, 'empty store file'
        except OSError:
            return None, 'no store file'
        try:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            return None, f'cannot open: {e}'
        try:
            reason, revision, columns = verify_schema(conn)
        except sqlite3.Error as e:
            reason, revision, columns = f'cannot read the schema: {e}', '', {}
        if reason:
            conn.close()
            return None, reason
        conn.execute('PRAGMA foreign_keys = ON')
        conn.execute(f'PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}')
        conn.execute('PRAGMA case_sensitive_like = true')
        return cls(path, conn, revision, columns), ''

    def close(self) -> None:
        self.conn.close()

    # -- transactions

    def _write(self, fn: Any) -> Any:
        conn = self.conn
        with self.lock:
            conn.execute('BEGIN IMMEDIATE')
            try:
                result = fn(conn)
            except BaseException:
                conn.execute('ROLLBACK')
                raise
            conn.execute('COMMIT')
        return result

    # -- experiments

    def experiment_id_by_id(self, experiment_id: str) -> str:
        if not str(experiment_id).isdigit():
            raise Unsupported('experiment id is not an integer')
        with self.lock:
            row = self.conn.execute('SELECT experiment_id, lifecycle_stage FROM experiments WHERE experiment_id = ?',
                                    (int(experiment_id),)).fetchone()
        if row is None:
            raise Unsupported('no such experiment')  # MLflow's own error message
        return str(row[0])

    def experiment_by_name(self, name: str) -> tuple[str, str] | None:
        with self.lock:
            rows = self.conn.execute('SELECT experiment_id, lifecycle_stage FROM experiments WHERE name = ?',
                                     (name,)).fetchall()
        if len(rows) > 1:
            raise Unsupported('several experiments with this name')
        return (str(rows[0][0]), rows[0][1]) if rows else None

    def create_experiment(self, name: str) -> str:
        if not isinstance(name, str) or not name or len(name) > MAX_EXPERIMENT_NAME or not name.isprintable():
            raise Unsupported('experiment name outside what the fast path verified')
        root = default_artifact_root()

        def insert(conn: sqlite3.Connection) -> str:
            now = _now_ms()
            if conn.execute('SELECT 1 FROM experiments WHERE name = ?', (name,)).fetchone():
                raise Unsupported('experiment exists')  # raced with another creator: MLflow's message
            columns = ['name', 'artifact_location', 'lifecycle_stage', 'creation_time', 'last_update_time']
            values: list[Any] = [name, None, 'active', now, now]
            if 'workspace' in self.experiment_columns:
                columns.append('workspace')
                values.append('default')
            cur = conn.execute(f'INSERT INTO experiments ({", ".join(columns)}) VALUES '
                               f'({", ".join("?" * len(values))})', values)
            experiment_id = cur.lastrowid
            conn.execute('UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?',
                         (f'{root}/{experiment_id}', experiment_id))
            return str(experiment_id)

        return self._write(insert)

    # -- runs

    def create_run(self, experiment_id: str, tags: dict[str, str], run_name: str | None) -> str:
        self._check_tags(tags)
        name_tag = tags.get(RUN_NAME)
        if run_name and name_tag and run_name != name_tag:
            raise Unsupported('run name and mlflow.runName differ')  # MLflow's error
        if run_name is not None and (not isinstance(run_name, str) or len(run_name) > 250):
            raise Unsupported('run name outside what the fast path verified')
        if not str(experiment_id).isdigit():
            raise Unsupported('experiment id is not an integer')
        name = run_name or name_tag or generate_run_name()
        rows = dict(tags)
        if not name_tag:
            rows[RUN_NAME] = name
        run_id = uuid.uuid4().hex
        start_time = _now_ms()

        def insert(conn: sqlite3.Connection) -> str:
            exp = conn.execute('SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = ?',
                               (int(experiment_id),)).fetchone()
            if exp is None or exp[1] != 'active' or not exp[0]:
                raise Unsupported('experiment missing or not active')
            conn.execute(
                'INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, '
                'start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id, deleted_time) '
                'VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, NULL)',
                (run_id, name, 'UNKNOWN', '', '', tags.get(USER, 'unknown'), RUNNING, start_time, '',
                 'active', _append_path(exp[0], run_id, 'artifacts'), int(experiment_id)))
            conn.executemany('INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)',
                             [(k, v, run_id) for k, v in rows.items()])
            return run_id

        return self._write(insert)

    def _active_run(self, conn: sqlite3.Connection, run_id: str) -> None:
        row = conn.execute('SELECT lifecycle_stage FROM runs WHERE run_uuid = ?', (run_id,)).fetchone()
        if row is None or row[0] != 'active':
            raise Unsupported('run missing or not active')  # MLflow's error message

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        if len(params) > MAX_PER_CALL:
            raise Unsupported('too many params for one batch')
        for k, v in params.items():
            if not _key_ok(k) or not isinstance(v, str) or len(v) > MAX_PARAM_VALUE:
                raise Unsupported(f'param {k!r} outside what the fast path verified')

        def insert(conn: sqlite3.Connection) -> None:
            self._active_run(conn, run_id)
            existing = dict(conn.execute('SELECT key, value FROM params WHERE run_uuid = ?', (run_id,)).fetchall())
            if any(k in existing and existing[k] != v for k, v in params.items()):
                raise Unsupported('changing a logged param')  # MLflow's error message
            conn.executemany('INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)',
                             [(k, v, run_id) for k, v in params.items() if k not in existing])

        self._write(insert)

    def _check_tags(self, tags: dict[str, str]) -> None:
        if len(tags) > MAX_PER_CALL:
            raise Unsupported('too many tags for one batch')
        for k, v in tags.items():
            if not _key_ok(k) or not isinstance(v, str) or len(v) > MAX_TAG_VALUE:
                raise Unsupported(f'tag {k!r} outside what the fast path verified')

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self._check_tags(tags)
        if RUN_NAME in tags:
            raise Unsupported('renaming a run')  # MLflow also updates runs.name

        def upsert(conn: sqlite3.Connection) -> None:
            self._active_run(conn, run_id)
            conn.executemany('INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?) '
                             'ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value',
                             [(k, v, run_id) for k, v in tags.items()])

        self._write(upsert)

    def set_status(self, run_id: str, status: str) -> None:
        if status not in (RUNNING, SCHEDULED, FINISHED, FAILED, KILLED):
            raise Unsupported('unknown status')
        end_time = _now_ms()

        def update(conn: sqlite3.Connection) -> None:
            self._active_run(conn, run_id)
            conn.execute('UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?', (status, end_time, run_id))

        self._write(update)

    def get_run(self, run_id: str) -> dict[str, Any]:
        conn = self.conn
        with self.lock:
            return self._read_run(conn, run_id)

    def _read_run(self, conn: sqlite3.Connection, run_id: str) -> dict[str, Any]:
        conn.execute('BEGIN')  # one consistent snapshot
        try:
            row = conn.execute('SELECT run_uuid, experiment_id, status, artifact_uri FROM runs WHERE run_uuid = ?',
                               (run_id,)).fetchone()
            if row is None:
                raise Unsupported('no such run')  # MLflow's error message
            tags = dict(conn.execute('SELECT key, value FROM tags WHERE run_uuid = ?', (run_id,)).fetchall())
            params = dict(conn.execute('SELECT key, value FROM params WHERE run_uuid = ?', (run_id,)).fetchall())
            metrics = {k: (float('nan') if is_nan else float(v)) for k, v, is_nan in conn.execute(
                'SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = ?', (run_id,))}
        finally:
            conn.execute('COMMIT')
        return {'run_id': row[0], 'experiment_id': str(row[1]), 'status': row[2], 'artifact_uri': row[3] or '',
                'tags': tags, 'params': params, 'metrics': metrics}


    def search_with_tag(self, experiment_ids: list[str], key: str, value: str, status: str = RUNNING
                        ) -> list[dict[str, Any]]:
        """What ``search_runs(experiment_ids, "attributes.status = '<status>' and tags.`key` = 'value'")``
        answers with MLflow's defaults (active runs only), newest first: the stale-run check's query
        (RUNNING) and the run cache's (FINISHED)."""
        if not experiment_ids or len(experiment_ids) > 100 or not _key_ok(key) or status not in RUN_STATUSES:
            raise Unsupported('search outside the verified bounds')
        ids = [int(e) for e in experiment_ids if str(e).isdigit()]
        if len(ids) != len(experiment_ids):
            raise Unsupported('non-numeric experiment id')
        marks = ','.join('?' * len(ids))
        conn = self.conn
        with self.lock:
            conn.execute('BEGIN')
            try:
                rows = conn.execute(
                    'SELECT r.run_uuid, r.experiment_id, r.status, r.start_time, r.end_time FROM runs r'
                    f' JOIN tags t ON t.run_uuid = r.run_uuid WHERE r.experiment_id IN ({marks}) AND r.status = ?'
                    " AND r.lifecycle_stage = 'active' AND t.key = ? AND t.value = ?"
                    ' ORDER BY r.start_time DESC, r.run_uuid', (*ids, status, key, value),
                ).fetchall()
                out = []
                for run_id, experiment_id, run_status, start, end in rows[:10_000]:
                    tags = dict(conn.execute('SELECT key, value FROM tags WHERE run_uuid = ?', (run_id,)).fetchall())
                    out.append({'run_id': run_id, 'experiment_id': str(experiment_id), 'status': run_status,
                                'tags': tags, 'start_time': start, 'end_time': end})
            finally:
                conn.execute('COMMIT')
        return out


def _append_path(root: str, *parts: str) -> str:
    """``append_to_uri_path`` for the artifact locations MLflow's sqlite store writes: a POSIX path
    or a ``scheme://`` URI without query string (others are refused, MLflow handles them)."""
    if '?' in root or '#' in root:
        raise Unsupported('artifact location with a query string')
    return root.rstrip('/') + '/' + '/'.join(parts) if root != '/' else '/' + '/'.join(parts)


# --------------------------------------------------------------------------------------------
# the tracker


def _mlflow_importable() -> bool:
    """Whether MLflow can be imported, without importing it."""
    import importlib.util

    if 'mlflow' in sys.modules:
        return sys.modules['mlflow'] is not None
    return importlib.util.find_spec('mlflow') is not None


class SqliteTracker:
    """The ``Tracker`` for ``sqlite:///`` URIs: the fast path where verified, ``ClientTracker``
    (MLflow's own client) for everything else."""

    def __init__(self, uri: str, *, announce: Any = None) -> None:
        from mlproj.tracking import ClientTracker

        self.uri = uri
        self._fallback = ClientTracker(uri)
        self._store: SqliteStore | None = None
        self.fallback_reason = ''
        store, reason = SqliteStore.open(uri)
        if store is None:
            self.fallback_reason = reason
            path = sqlite_path(uri)
            # said only where MLflow is there to create it (else the missing-dependency error follows)
            if path and reason in ('no store file', 'empty store file', 'no MLflow schema yet') \
                    and _mlflow_importable():
                (announce or _announce)(f'creating MLflow store {_display(path)}')
        self._store = store

    @property
    def fast(self) -> bool:
        return self._store is not None

    def __getattr__(self, name: str) -> Any:
        # tracker methods without a fast path (added to ClientTracker later) are MLflow's
        if name.startswith('_'):
            raise AttributeError(name)
        return getattr(self._fallback, name)

    def _run(self, what: str, fast: Any, slow: Any) -> Any:
        if self._store is not None:
            try:
                return fast(self._store)
            except Unsupported:
                pass
            except sqlite3.Error as e:
                from mlproj.tracking import redact_uri

                raise TrackingError(f'{what} failed: {e}', redact_uri(self.uri)) from e
        return slow()

    def resolve_experiment(self, name: str | None, experiment_id: str | None) -> str:
        if self._store is None:
            return self._fallback.resolve_experiment(name, experiment_id)
        if experiment_id is None and not name:
            experiment_id = '0'

        def fast(store: SqliteStore) -> str:
            if experiment_id is not None:
                return store.experiment_id_by_id(experiment_id)
            assert name is not None  # experiment_id is None only when a name is given
            found = store.experiment_by_name(name)
            if found is None:
                return store.create_experiment(name)
            if found[1] == 'deleted':
                raise TrackingError(f'experiment {name!r} is deleted; restore it or choose another name')
            return found[0]

        return self._run('looking up experiment', fast, lambda: self._fallback.resolve_experiment(name, experiment_id))

    def create_run(self, experiment_id: str, tags: dict[str, str], run_name: str | None) -> str:
        return self._run('creating run', lambda s: s.create_run(experiment_id, tags, run_name),
                         lambda: self._fallback.create_run(experiment_id, tags, run_name))

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        if not params:
            return
        items = list(params.items())
        for i in range(0, len(items), MAX_PER_CALL):
            chunk = dict(items[i:i + MAX_PER_CALL])
            self._run('logging parameters', lambda s: s.log_params(run_id, chunk),
                      lambda: self._fallback.log_params(run_id, chunk))

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        if not tags:
            return
        self._run('setting tags', lambda s: s.set_tags(run_id, tags), lambda: self._fallback.set_tags(run_id, tags))

    def get_run(self, run_id: str) -> Any:
        from mlproj.tracking import RunRecord

        def fast(store: SqliteStore) -> Any:
            d = store.get_run(run_id)
            return RunRecord(d['run_id'], d['experiment_id'], d['status'], d['tags'], d['params'], d['metrics'],
                             d['artifact_uri'])

        return self._run(f'reading run {run_id}', fast, lambda: self._fallback.get_run(run_id))

    def search_with_tag(self, experiment_ids: list[str], key: str, value: str, status: str = RUNNING
                        ) -> list[Any]:
        from mlproj.tracking import RunRecord

        def fast(store: SqliteStore) -> list[Any]:
            return [RunRecord(d['run_id'], d['experiment_id'], d['status'], d['tags'], start_time=d['start_time'],
                              end_time=d['end_time'])
                    for d in store.search_with_tag(experiment_ids, key, value, status)]

        return self._run('searching runs', fast,
                         lambda: self._fallback.search_with_tag(experiment_ids, key, value, status))

    def search_running_with_tag(self, experiment_ids: list[str], key: str, value: str) -> list[Any]:
        return self.search_with_tag(experiment_ids, key, value, RUNNING)

    def set_status(self, run_id: str, status: str) -> None:
        self._run('ending run', lambda s: s.set_status(run_id, status),
                  lambda: self._fallback.set_status(run_id, status))


def _display(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith('..') else './' + rel


def _announce(message: str) -> None:
    print(f'mlproj: {message}', file=sys.stderr)
