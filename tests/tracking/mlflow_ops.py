"""Driver for the differential test of the sqlite fast path (run as a script, in any venv).

    python mlflow_ops.py init   DB            create MLflow's schema with that venv's MlflowClient
    python mlflow_ops.py fast   DB OUT.json   run OPS through mlproj's SqliteTracker, then dump
    python mlflow_ops.py client DB OUT.json   run OPS through mlproj's ClientTracker, then dump
    python mlflow_ops.py both   DB1 OUT1 DB2 OUT2   fast on DB1, then client on DB2 (one process,
                                              one MLflow import: the fast ops run before it)

mlproj is found through PYTHONPATH (the venv under test need not have it installed).  The dump is
the store's rows and MLflow's own reads (MlflowClient.get_run / search_runs / get_experiment_by_name)
normalized so that two stores written by the same operations compare equal: run ids become labels
after their format is checked, timestamps become '<ms>' after being checked to be integer
milliseconds inside the process's lifetime, generated run names become '<generated>' after being
checked against MLflow's own word lists.
"""
from __future__ import annotations

import json
import re
import sqlite3
import sys
import time

T0 = int(time.time() * 1000)

TAGS = {
    'mlflow.user': 'alice',
    'mlflow.source.type': 'PROJECT',
    'mlflow.source.name': 'file:///src/proj#sub',
    'mlflow.project.entryPoint': 'main',
    'mlflow.project.backend': 'local',
    'mlproj.env_manager': 'local',
}


def ops(tracker) -> dict:
    """The same calls mlproj's runner and backends make, in the same order."""
    out: dict = {}
    out['default'] = tracker.resolve_experiment(None, None)
    exp_a = tracker.resolve_experiment('exp-a', None)          # created
    out['exp_a'] = exp_a
    out['exp_a_again'] = tracker.resolve_experiment('exp-a', None)  # looked up
    out['exp_a_by_id'] = tracker.resolve_experiment(None, exp_a)
    out['exp_b'] = tracker.resolve_experiment('exp b / with spaces', None)
    runs = []
    r1 = tracker.create_run(out['default'], dict(TAGS), None)      # MLflow names it
    runs.append(r1)
    time.sleep(0.005)  # distinct start times: searches ordered by start_time break ties by the random run id
    r2 = tracker.create_run(exp_a, {**TAGS, 'mlflow.runName': 'named'}, 'named')
    runs.append(r2)
    time.sleep(0.005)
    r3 = tracker.create_run(out['exp_b'], {'mlflow.user': 'bob', 'mlflow.parentRunId': r1}, None)
    runs.append(r3)
    tracker.log_params(r1, {'alpha': '0.5', 'path': '/data/x y.csv', 'empty': '', 'quote': "it's"})
    tracker.log_params(r1, {'alpha': '0.5', 'beta': '2'})          # resume: same value again is fine
    tracker.log_params(r2, {'alpha': '0.25', 'long': 'v' * 5000})
    tracker.log_params(r3, {f'p{i:03d}': str(i) for i in range(150)})  # more than one batch
    tracker.set_tags(r1, {'mlproj.env.hash': 'abc123', 'k': 'v1'})
    tracker.set_tags(r1, {'k': 'v2'})                               # overwritten
    tracker.set_tags(r2, {'k': 'v0', 'mlproj.local.pid': '12345'})
    out['record_running'] = record(tracker.get_run(r1))
    # the stale-run check's query (mlproj.stale): RUNNING runs carrying a tag value
    out['searches'] = [
        [record(x) for x in tracker.search_running_with_tag([out['default'], exp_a], 'k', 'v2')],
        [record(x) for x in tracker.search_running_with_tag([out['default'], exp_a, out['exp_b']], 'mlflow.user',
                                                            'alice')],
        [record(x) for x in tracker.search_running_with_tag([exp_a], 'k', 'v2')],
    ]
    tracker.set_status(r1, 'FINISHED')
    tracker.set_status(r2, 'FAILED')
    tracker.set_status(r3, 'KILLED')
    out['records'] = [record(tracker.get_run(r)) for r in runs]
    out['searches'].append([record(x) for x in tracker.search_running_with_tag([out['default'], exp_a], 'k', 'v2')])
    # the run cache's query (mlproj.runcache): FINISHED runs carrying a key, with their times
    out['searches'].append([record(x) for x in tracker.search_with_tag([out['default'], exp_a], 'k', 'v2',
                                                                       'FINISHED')])
    out['searches'].append([record(x) for x in tracker.search_with_tag([out['default'], exp_a, out['exp_b']],
                                                                       'mlflow.user', 'alice', 'FAILED')])
    out['run_ids'] = runs
    return out


def record(rec) -> dict:
    return {'run_id': rec.run_id, 'experiment_id': rec.experiment_id, 'status': rec.status, 'tags': rec.tags,
            'params': rec.params, 'metrics': rec.metrics, 'artifact_uri': rec.artifact_uri,
            'start_time': rec.start_time, 'end_time': rec.end_time}


class Normalizer:
    def __init__(self, run_ids: list[str]) -> None:
        for r in run_ids:
            assert re.fullmatch(r'[0-9a-f]{32}', r), r
        self.labels = {r: f'<run{i}>' for i, r in enumerate(run_ids)}
        from mlflow.utils import name_utils

        self.predicates = set(name_utils._GENERATOR_PREDICATES)
        self.nouns = set(name_utils._GENERATOR_NOUNS)
        self.now = int(time.time() * 1000)

    def ms(self, v, since: int = T0):
        """Integer milliseconds since the epoch, written between ``since`` and now."""
        if v is None:
            return None
        assert isinstance(v, int) and since - 1 <= v <= self.now + 1, v
        return '<ms>'

    def name(self, v):
        parts = (v or '').split('-')
        if len(parts) == 3 and parts[0] in self.predicates and parts[1] in self.nouns and parts[2].isdigit():
            assert len(v) <= 20, v
            return '<generated>'
        return v

    def text(self, v):
        if not isinstance(v, str):
            return v
        for r, label in self.labels.items():
            v = v.replace(r, label)
        return v

    def tag(self, key, value):
        return self.name(value) if key == 'mlflow.runName' else self.text(value)

    def record(self, rec: dict) -> dict:
        return {**rec, 'run_id': self.text(rec['run_id']), 'artifact_uri': self.text(rec['artifact_uri']),
                'start_time': self.ms(rec['start_time']), 'end_time': self.ms(rec['end_time']),
                'tags': {k: self.tag(k, v) for k, v in sorted(rec['tags'].items())},
                'params': dict(sorted(rec['params'].items()))}


def dump(db: str, result: dict) -> dict:
    n = Normalizer(result['run_ids'])
    conn = sqlite3.connect(db)
    rows: dict = {}
    cols = [r[1] for r in conn.execute('PRAGMA table_info(experiments)')]
    rows['experiments'] = sorted(
        # the Default experiment (0) was created with the store, before these operations
        [{c: (n.ms(v, since=T0 if row[0] else T0 - 3_600_000) if c in ('creation_time', 'last_update_time') else v)
          for c, v in zip(cols, row)}
         for row in conn.execute('SELECT * FROM experiments')], key=lambda d: d['experiment_id'])
    cols = [r[1] for r in conn.execute('PRAGMA table_info(runs)')]
    rows['runs'] = sorted(
        [{c: (n.ms(v) if c in ('start_time', 'end_time') else n.name(v) if c == 'name' else n.text(v))
          for c, v in zip(cols, row)} for row in conn.execute('SELECT * FROM runs')], key=lambda d: d['run_uuid'])
    rows['tags'] = sorted((n.text(r), k, n.tag(k, v)) for k, v, r in conn.execute('SELECT key, value, run_uuid FROM tags'))
    rows['params'] = sorted((n.text(r), k, v) for k, v, r in conn.execute('SELECT key, value, run_uuid FROM params'))
    rows['experiment_tags'] = sorted(conn.execute('SELECT * FROM experiment_tags').fetchall())
    rows['alembic_version'] = conn.execute('SELECT * FROM alembic_version').fetchall()
    rows['integrity'] = conn.execute('PRAGMA integrity_check').fetchall()
    rows['foreign_keys'] = conn.execute('PRAGMA foreign_key_check').fetchall()
    conn.close()

    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=f'sqlite:///{db}')
    reads: dict = {'runs': []}
    for r in result['run_ids']:
        run = c.get_run(r)
        i = run.info
        reads['runs'].append({
            'run_id': n.text(i.run_id), 'experiment_id': i.experiment_id, 'status': i.status,
            'lifecycle_stage': i.lifecycle_stage, 'user_id': i.user_id, 'run_name': n.name(i.run_name),
            'artifact_uri': n.text(i.artifact_uri), 'start_time': n.ms(i.start_time), 'end_time': n.ms(i.end_time),
            'tags': {k: n.tag(k, v) for k, v in sorted(run.data.tags.items())},
            'params': dict(sorted(run.data.params.items())), 'metrics': run.data.metrics,
        })
    exps = [e.experiment_id for e in c.search_experiments()]
    reads['experiments'] = sorted(
        (e.experiment_id, e.name, e.artifact_location, e.lifecycle_stage, sorted(e.tags.items()))
        for e in (c.get_experiment(x) for x in exps))
    reads['by_name'] = c.get_experiment_by_name('exp-a').experiment_id

    def search(**kw):
        return [n.text(r.info.run_id) for r in c.search_runs(exps, **kw)]

    # what `mlflow ui` asks: filters and order_by on params, tags, attributes
    reads['search'] = {
        'param': search(filter_string="params.alpha = '0.5'"),
        'param_like': search(filter_string="params.path LIKE '%x y%'"),
        'tag': search(filter_string="tags.k = 'v2'"),
        'run_name': search(filter_string="tags.`mlflow.runName` = 'named'"),
        'run_name_attr': search(filter_string="attributes.run_name = 'named'"),
        'status': search(filter_string="attributes.status = 'FINISHED'"),
        'user': search(filter_string="tags.`mlflow.user` = 'bob'"),
        'order_param': search(order_by=['params.alpha DESC']),
        'order_tag': search(order_by=['tags.k ASC']),
        'order_start': search(order_by=['attributes.start_time DESC']),
        'active': search(run_view_type=1),
    }
    return {'rows': rows, 'reads': reads,
            'result': {**{k: v for k, v in result.items() if k not in ('records', 'record_running', 'run_ids', 'searches')},
                       'searches': [[n.record(x) for x in found] for found in result['searches']],
                       'record_running': n.record(result['record_running']),
                       'records': [n.record(x) for x in result['records']]}}


def run(mode: str, db: str, out_path: str) -> None:
    if mode == 'fast':
        already = 'mlflow' in sys.modules
        from mlproj.tracking_sqlite import SqliteTracker

        tracker = SqliteTracker(f'sqlite:///{db}')
        assert tracker.fast, tracker.fallback_reason
    else:
        already = None
        from mlproj.tracking import ClientTracker

        tracker = ClientTracker(f'sqlite:///{db}')
    result = ops(tracker)
    imported = sorted(m for m in ('mlflow', 'sqlalchemy', 'alembic') if m in sys.modules)
    if mode == 'fast':
        assert not already
        assert tracker.fast and tracker._fallback._client is None, 'the fast path fell back to MlflowClient'
    out = dump(db, result)
    out['imported_during_ops'] = imported if mode == 'fast' else None
    with open(out_path, 'w') as f:
        json.dump(out, f, indent=1, sort_keys=True)


def main() -> None:
    mode, db = sys.argv[1], sys.argv[2]
    if mode == 'init':
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=f'sqlite:///{db}').search_experiments()
    elif mode == 'both':
        run('fast', db, sys.argv[3])
        run('client', sys.argv[4], sys.argv[5])
    else:
        run(mode, db, sys.argv[3])


if __name__ == '__main__':
    main()
