"""What the sqlite fast path (``mlproj.tracking_sqlite``) may rely on in a store's schema.

A store is written by the fast path only when its alembic revision is one the differential test
(``tests/tracking/test_sqlite_fast_path.py``) verified against MLflow itself (``VERIFIED_REVISIONS``:
the oldest supported mlflow-skinny, the newest, and the newest release of the full mlflow package,
pinned in ``.ci/constraints-*``),
when that revision is the head of the MLflow installed here (otherwise MLflow would refuse the store
as out of date), and when every table and column the fast path touches is there.

The installed MLflow's head is read from its migration files, not by importing MLflow (2-5 s), and
remembered in the cache root keyed by the migrations directory's identity (~8 ms a run otherwise).
Adding a release: install it, run the differential test, add its head here with the release name
and a note on what its migrations changed.
"""
from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

# alembic head revision -> the MLflow release whose store the differential test verified.
VERIFIED_REVISIONS = {
    'acf3f17fdcc7': 'mlflow 2.10',
    'dc11669786a5': 'mlflow 3.17',
    'f4a9b2c7d1e6': 'mlflow 3.18',  # 3.17 -> 3.18 adds skill-registry/issue/MCP tables, none touched here
}

# tables and columns the fast path reads or writes (present in every verified revision)
REQUIRED_COLUMNS = {
    'experiments': ('experiment_id', 'name', 'artifact_location', 'lifecycle_stage', 'creation_time',
                    'last_update_time'),
    'experiment_tags': ('key', 'value', 'experiment_id'),
    'runs': ('run_uuid', 'name', 'source_type', 'source_name', 'entry_point_name', 'user_id', 'status',
             'start_time', 'end_time', 'source_version', 'lifecycle_stage', 'artifact_uri', 'experiment_id',
             'deleted_time'),
    'tags': ('key', 'value', 'run_uuid'),
    'params': ('key', 'value', 'run_uuid'),
    'latest_metrics': ('key', 'value', 'timestamp', 'step', 'is_nan', 'run_uuid'),
}


def mlflow_package_dir() -> Path | None:
    import importlib.util

    try:
        spec = importlib.util.find_spec('mlflow')
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


_REVISION_RE = re.compile(r'^(down_revision|revision)\s*(?::\s*[^=]+)?=\s*[\'"]([0-9a-f]+)[\'"]', re.M)


def installed_head_revision(mlflow_dir: Path | None = None) -> str | None:
    """The alembic head of the installed MLflow's store migrations (the revision it requires).

    Reading every migration costs ~8 ms per run, so the answer is kept in the cache root, keyed
    by the migrations directory's path, inode and modification time (installing or upgrading MLflow
    replaces or rewrites that directory); a missing, unreadable or stale record is recomputed."""
    mlflow_dir = mlflow_dir or mlflow_package_dir()
    if mlflow_dir is None:
        return None
    versions = mlflow_dir / 'store' / 'db_migrations' / 'versions'
    try:
        st = os.stat(versions)
    except OSError:
        return None
    key = f'{versions}\0{st.st_ino}\0{st.st_mtime_ns}\0{st.st_ctime_ns}'
    record = _head_record_path()
    try:
        with open(record, encoding='utf-8') as f:
            saved_key, _, saved_head = f.read(8192).rpartition('\0')
        if saved_key == key and re.fullmatch(r'[0-9a-f]{6,40}', saved_head):
            return saved_head
    except (OSError, ValueError):
        pass
    head = _scan_head_revision(mlflow_dir)
    if head is not None:
        _save_head_record(record, f'{key}\0{head}')
    return head


def _head_record_path() -> Path:
    from mlproj.cachedir import cache_root

    return cache_root() / 'facts' / 'mlflow-sqlite-head'


def _save_head_record(record: Path, text: str) -> None:
    """Best effort, atomic (temporary file + rename): a cache that cannot be written is skipped."""
    from mlproj.cachedir import write_text_atomic

    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(record, text)
    except OSError:
        pass


def _scan_head_revision(mlflow_dir: Path) -> str | None:
    revisions: set[str] = set()
    parents: set[str] = set()
    try:
        with os.scandir(mlflow_dir / 'store' / 'db_migrations' / 'versions') as entries:
            for entry in entries:
                if not entry.name.endswith('.py') or entry.name.startswith('__'):
                    continue
                with open(entry.path, encoding='utf-8') as f:
                    text = f.read(4096)  # alembic writes the identifiers at the top
                for kind, rev in _REVISION_RE.findall(text):
                    (revisions if kind == 'revision' else parents).add(rev)
    except OSError:
        return None
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def verify_schema(conn: sqlite3.Connection) -> tuple[str, str, dict[str, set[str]]]:
    """(why not, revision, columns by table): an empty reason when the fast path may write this store."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if 'alembic_version' not in tables:
        return 'no MLflow schema yet', '', {}
    revisions = [r[0] for r in conn.execute('SELECT version_num FROM alembic_version')]
    if len(revisions) != 1:
        return f'unexpected alembic revisions {revisions}', '', {}
    revision = revisions[0]
    if revision not in VERIFIED_REVISIONS:
        return f'schema revision {revision} not verified', revision, {}
    head = installed_head_revision()
    if head != revision:
        return f'schema revision {revision} is not the installed MLflow head {head}', revision, {}
    columns: dict[str, set[str]] = {}
    for table, needed in REQUIRED_COLUMNS.items():
        if table not in tables:
            return f'table {table} missing', revision, {}
        have = {r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')}
        missing = [c for c in needed if c not in have]
        if missing:
            return f'{table} lacks {", ".join(missing)}', revision, {}
        columns[table] = have
    return '', revision, columns
