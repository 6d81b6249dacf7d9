"""`mlproj sweep` end to end: real child processes, a real sqlite store and a real `mlflow server`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import mlproj_bin, signal_once_started, write_project
from tests.helpers.git import commit_all, git

pytestmark = pytest.mark.slow

PY = sys.executable

POINT = """\
import os, sys, time
a, b, log, pause = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
name = os.path.join(log, f"{a}_{b}")
with open(name + ".start", "w") as f:
    f.write(f"{time.time()} {os.getpid()}")
time.sleep(pause)
if a == "fail":
    sys.exit(3)
import mlflow
mlflow.log_metric("score", float(a) * len(b))
with open(name + ".end", "w") as f:
    f.write(str(time.time()))
"""


def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / 'proj', (
        'name: sweepy\n'
        'entry_points:\n'
        '  main:\n'
        '    parameters:\n'
        '      a: {type: string, default: "1"}\n'
        '      b: {type: string, default: x}\n'
        '      log: string\n'
        '      pause: {type: float, default: 1.0}\n'
        f'    command: "{PY} point.py {{a}} {{b}} {{log}} {{pause}}"\n'), {'point.py': POINT})


def sweep(proj: Path, store: str, *args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, 'MLFLOW_TRACKING_URI': store}
    return subprocess.run([mlproj_bin(), 'sweep', str(proj), '--env-manager', 'local', *args], cwd=cwd, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def result_of(stdout: str) -> dict:
    """The --json document: the last thing on stdout (the points' own output comes before it)."""
    start = 0 if stdout.startswith('{') else stdout.rindex('\n{\n') + 1
    return json.loads(stdout[start:])


def client(store: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(store)


def all_runs(store: str) -> list:
    c = client(store)
    return c.search_runs([e.experiment_id for e in c.search_experiments()], max_results=1000)


def max_overlap(log: Path) -> int:
    events = []
    for start in log.glob('*.start'):
        t0 = float(start.read_text().split()[0])
        end = start.with_suffix('.end')
        t1 = float(end.read_text()) if end.exists() else float('inf')
        events += [(t0, 1), (t1, -1)]
    alive = peak = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        alive += delta
        peak = max(peak, alive)
    return peak


def test_a_2x3_grid_with_max_parallel_2(tmp_path, sqlite_store):
    proj, log = project(tmp_path), tmp_path / 'log'
    log.mkdir()
    r = sweep(proj, sqlite_store, '-P', 'a=1,2', '-P', r'b=x,yy\,z,www', '-P', f'log={log}', '-P', 'pause=1.0',
              '--max-parallel', '2', '--metric', 'score', '--goal', 'max', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(list(log.glob('*.end'))) == 6
    assert max_overlap(log) == 2                       # never more than 2 alive, and 2 were
    runs = all_runs(sqlite_store)
    parents = [x for x in runs if x.data.tags.get('mlproj.sweep') == 'true']
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == 'FINISHED' and parent.data.tags['mlproj.sweep.points'] == '6'
    assert parent.data.tags['mlflow.runName'] == 'sweep-main'
    assert parent.data.params == {'log': str(log), 'pause': '1.0'}     # the constants
    children = [x for x in runs if x.data.tags.get('mlflow.parentRunId') == parent.info.run_id]
    assert len(children) == 6 and {c.info.status for c in children} == {'FINISHED'}
    assert {(c.data.params['a'], c.data.params['b']) for c in children} == \
        {(a, b) for a in ('1', '2') for b in ('x', 'yy,z', 'www')}          # \, is a literal comma
    assert {c.data.tags['mlflow.runName'] for c in children} >= {'a=1,b=x', 'a=2,b=yy,z'}
    # the table: best first by score (a * len(b)), every point with its run id
    lines = r.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ['#', 'a', 'b', 'status'] and lines[0].split()[-1] == 'score'
    scores = [float(line.split()[-1]) for line in lines[2:]]
    assert scores == sorted(scores, reverse=True) == [8.0, 6.0, 4.0, 3.0, 2.0, 1.0]
    ids = {line.split()[-2] for line in lines[2:]}
    assert ids == {c.info.run_id for c in children}
    assert "=== Sweep (parent run ID" in r.stderr and 'finished' in r.stderr


def test_a_failed_point_does_not_stop_the_others_unless_fail_fast(tmp_path, sqlite_store):
    proj, log = project(tmp_path), tmp_path / 'log'
    log.mkdir()
    r = sweep(proj, sqlite_store, '-P', 'a=fail,1,2', '-P', f'log={log}', '-P', 'pause=0.1', '--json',
              '--experiment-name', 'ff-off', cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    result = result_of(r.stdout)
    assert [p['status'] for p in sorted(result['points'], key=lambda p: p['index'])] == \
        ['FAILED', 'FINISHED', 'FINISHED']
    assert result['points'][0]['exit_code'] == 3 and result['status'] == 'FAILED'
    assert client(sqlite_store).get_run(result['parent_run_id']).info.status == 'FAILED'

    log2 = tmp_path / 'log2'
    log2.mkdir()
    r = sweep(proj, sqlite_store, '-P', 'a=fail,1,2', '-P', f'log={log2}', '-P', 'pause=0.1', '--json',
              '--fail-fast', '--experiment-name', 'ff-on', cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    result = result_of(r.stdout)
    statuses = {p['index']: p['status'] for p in result['points']}
    assert statuses == {0: 'FAILED', 1: 'SKIPPED', 2: 'SKIPPED'}
    assert not (log2 / '1_x.start').exists()
    exp = client(sqlite_store).get_experiment_by_name('ff-on')
    assert len(client(sqlite_store).search_runs([exp.experiment_id])) == 2   # the parent and point 0 only


@pytest.mark.parametrize('sig,code', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_sweep_kills_running_points_and_starts_no_queued_one(tmp_path, sqlite_store, sig, code):
    proj, log = project(tmp_path), tmp_path / f'log{sig}'
    log.mkdir()
    env = {**os.environ, 'MLFLOW_TRACKING_URI': sqlite_store, 'MLPROJ_KILL_GRACE': '2'}
    exp = f'interrupted-{sig}'
    proc = subprocess.Popen([mlproj_bin(), 'sweep', str(proj), '--env-manager', 'local', '-P', 'a=1,2,3,4,5',
                             '-P', f'log={log}', '-P', 'pause=120', '--max-parallel', '2', '--experiment-name', exp],
                            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list(log.glob('*.start'))) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, 'the points never started'
        time.sleep(0.05)
    pids = [int(f.read_text().split()[1]) for f in log.glob('*.start')]
    t0 = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert time.monotonic() - t0 < 30
    for pid in pids:
        assert not os.path.exists(f'/proc/{pid}') or 'Z' in Path(f'/proc/{pid}/stat').read_text().split()[2]
    assert len(list(log.glob('*.start'))) == 2                   # no queued point started
    c = client(sqlite_store)
    runs = c.search_runs([c.get_experiment_by_name(exp).experiment_id])
    parent = [r for r in runs if r.data.tags.get('mlproj.sweep') == 'true']
    children = [r for r in runs if r.data.tags.get('mlflow.parentRunId')]
    assert len(parent) == 1 and parent[0].info.status == 'KILLED'
    assert len(children) == 2 and {r.info.status for r in children} == {'KILLED'}
    assert 'queued point(s) will not start' in err
    assert out.count('SKIPPED') == 3 and out.count('KILLED') == 2


def test_a_sweep_on_a_tracking_server_and_its_per_point_reuse(tmp_path, mlflow_server):
    proj, log = project(tmp_path), tmp_path / 'log'
    log.mkdir()
    git('init', '-q', cwd=proj)
    commit_all(proj, 'x')
    args = ('-P', 'a=1,2,3', '-P', f'log={log}', '-P', 'pause=0.1', '--experiment-name', 'swept-http', '--json')
    r = sweep(proj, mlflow_server, *args, '--max-parallel', '3', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    first = result_of(r.stdout)
    c = client(mlflow_server)
    for p in first['points']:
        run = c.get_run(p['run_id'])
        assert run.data.tags['mlflow.parentRunId'] == first['parent_run_id']
        assert run.data.tags['mlflow.source.git.commit'] and run.data.tags['mlproj.cache_key']
        assert run.info.status == 'FINISHED'
    # the same sweep again with --reuse: every point is found, nothing runs
    for f in log.iterdir():
        f.unlink()
    r = sweep(proj, mlflow_server, *args, '--reuse', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    again = result_of(r.stdout)
    assert {p['status'] for p in again['points']} == {'REUSED'}
    assert {p['run_id'] for p in again['points']} == {p['run_id'] for p in first['points']}
    assert list(log.iterdir()) == []
    assert r.stderr.count('reused run') == 3


def test_dry_run_lists_points_and_bad_values_fail_before_any_run(tmp_path, sqlite_store):
    proj = project(tmp_path)
    r = sweep(proj, sqlite_store, '-P', 'a=1,2', '-P', 'log=/x', '--dry-run', cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.splitlines()[0] == '2 point(s); swept: a'
    bad = write_project(tmp_path / 'typed', 'entry_points:\n  main:\n    parameters:\n      n: int\n'
                                            f'    command: "{PY} -c pass {{n}}"\n')
    r = sweep(bad, sqlite_store, '-P', 'n=1,2,x', '--experiment-name', 'never', cwd=tmp_path)
    assert r.returncode == 66 and 'Traceback' not in r.stderr
    assert "'x'" in r.stderr or 'x' in r.stderr.splitlines()[-1]
    assert client(sqlite_store).get_experiment_by_name('never') is None


def test_a_signal_as_a_point_starts_cancels_that_point_before_the_sweep_returns(tmp_path, sqlite_store, monkeypatch):
    """In this process: SIGTERM once point 0's command runs, before its launch has returned. The
    point is cancelled like a running one (its command gone when the sweep returns, not only when
    mlproj would exit), the queued point never starts."""
    import io

    from mlproj import sweep as sweeping
    from mlproj.request import RunRequest

    proj, log = project(tmp_path), tmp_path / 'log'
    log.mkdir()
    signal_once_started(monkeypatch, lambda: bool(list(log.glob('*.start'))))
    monkeypatch.setenv('MLPROJ_KILL_GRACE', '2')
    out = io.StringIO()
    request = RunRequest(uri=str(proj), env_manager='local', tracking_uri=sqlite_store, cwd=str(tmp_path),
                         experiment_name='held-point')
    points = [{'a': a, 'log': str(log), 'pause': '120'} for a in ('1', '2')]
    result = sweeping.run_sweep(request, points, {}, ['a'], out=out)
    (start,) = log.glob('*.start')
    pid = int(start.read_text().split()[1])
    assert not os.path.exists(f'/proc/{pid}') or 'Z' in Path(f'/proc/{pid}/stat').read_text().split()[2]
    assert result.exit_code == 143 and result.status == 'KILLED'
    assert [p.status for p in result.points] == ['KILLED', 'SKIPPED']
    assert 'while starting point' not in out.getvalue() and '1 running point(s)' in out.getvalue()
    c = client(sqlite_store)
    runs = c.search_runs([c.get_experiment_by_name('held-point').experiment_id])
    assert sorted(r.info.status for r in runs) == ['KILLED', 'KILLED']  # the parent and point 0
