"""Process lifetime of local runs (mlproj.supervisor) and stale RUNNING runs (mlproj.stale).

Real processes only: the project's command starts a background child and a grandchild that
leaves the session (fork, ``setsid``, fork again, the middle process exits: a classic daemon),
records their pids, and sleeps.  mlproj is then SIGKILLed, cancelled or lets the command end.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers import mlproj_bin, write_project

PY = sys.executable
# each test starts several `mlproj`/mlflow processes; on a loaded 2-core machine one took 264 s, so the
# hang guard is raised from the default 300 s (the 5 s bound on process death is asserted by the test)
pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]
SPAWNER = textwrap.dedent('''\
    import os, subprocess, sys, time
    pidfile, linger = sys.argv[1], sys.argv[2] == "linger"
    bg = subprocess.Popen(["sleep", "300"])
    r, w = os.pipe()
    if os.fork() == 0:            # the escapee: new session, double fork, parent gone
        os.setsid()
        if os.fork() == 0:
            os.write(w, str(os.getpid()).encode())
            os.close(w)
            time.sleep(300)
            os._exit(0)
        os._exit(0)
    os.close(w)
    escapee = int(os.read(r, 32))
    with open(pidfile + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {bg.pid} {escapee}")
    os.rename(pidfile + ".tmp", pidfile)
    if linger:
        time.sleep(300)
''')


def alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def session_of(pid: int) -> int:
    with open(f'/proc/{pid}/stat') as f:
        return int(f.read().rsplit(')', 1)[1].split()[3])


@pytest.fixture
def spawner(tmp_path):
    return write_project(tmp_path / 'p', f'entry_points:\n  main:\n    parameters:\n      pidfile: string\n'
                                         f'      mode: {{type: string, default: linger}}\n'
                                         f'    command: "{PY} spawner.py {{pidfile}} {{mode}}"\n',
                         {'spawner.py': SPAWNER})


def start(project: Path, tmp_path: Path, store: str, *args: str, env: dict | None = None):
    pidfile = tmp_path / f'pids-{len(list(tmp_path.glob("pids-*")))}'
    full = {**os.environ, 'MLFLOW_TRACKING_URI': store, 'MLPROJ_KILL_GRACE': '2', **(env or {})}
    proc = subprocess.Popen([mlproj_bin(), 'run', str(project), '-P', f'pidfile={pidfile}', *args], cwd=tmp_path,
                            env=full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while not pidfile.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, 'the command never started'
        time.sleep(0.05)
    pids = [int(p) for p in pidfile.read_text().split()]
    return proc, pids


def wait_gone(pids: list[int], within: float) -> list[int]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def runs_by_name(store: str) -> dict:
    from mlflow.tracking import MlflowClient

    c = MlflowClient(store)
    return {r.data.tags.get('mlflow.runName'): r for r in c.search_runs([e.experiment_id for e in c.search_experiments()])}


def test_sigkill_of_mlproj_takes_every_process_of_the_run_down(spawner, tmp_path, sqlite_store):
    proc, pids = start(spawner, tmp_path, sqlite_store, '--run-name', 'sigkilled')
    command, background, escapee = pids
    assert all(alive(p) for p in pids)
    assert session_of(escapee) != session_of(command)  # it really left the run's session
    proc.kill()
    proc.communicate(timeout=30)
    killed_at = time.monotonic()
    assert wait_gone(pids, 5.0) == [], 'a process of the run survived SIGKILL of mlproj'
    assert time.monotonic() - killed_at < 5.0
    # the run is left RUNNING (nobody could end it) and carries who launched it
    run = runs_by_name(sqlite_store)['sigkilled']
    assert run.info.status == 'RUNNING'
    assert run.data.tags['mlproj.launcher.pid'] == str(proc.pid)
    # the explicit command ends it FAILED and says why
    env = {**os.environ, 'MLFLOW_TRACKING_URI': sqlite_store}
    gc = subprocess.run([mlproj_bin(), 'runs', 'gc', '--json'], env=env, capture_output=True, text=True, timeout=120)
    assert gc.returncode == 0, gc.stderr
    ended = json.loads(gc.stdout)
    assert [e['run_id'] for e in ended] == [run.info.run_id]
    run = runs_by_name(sqlite_store)['sigkilled']
    assert run.info.status == 'FAILED'
    assert f'launcher pid {proc.pid}' in run.data.tags['mlproj.stale'] and 'no longer running' in run.data.tags['mlproj.stale']
    again = subprocess.run([mlproj_bin(), 'runs', 'gc'], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout.startswith('0 stale run(s)'), again.stdout


def test_next_run_on_the_store_ends_a_stale_run_but_not_a_live_one(spawner, tmp_path):
    store = f'sqlite:///{tmp_path}/stale.db'
    dead, dead_pids = start(spawner, tmp_path, store, '--run-name', 'dead')
    dead.kill()
    dead.communicate(timeout=30)
    # the next run on the store ends the stale one (in the background, while its command runs)...
    live, live_pids = start(spawner, tmp_path, store, '--run-name', 'live')
    try:
        deadline = time.monotonic() + 60
        while runs_by_name(store)['dead'].info.status == 'RUNNING':
            assert time.monotonic() < deadline, 'the stale run was not ended'
            time.sleep(0.2)
        # ...and a run whose launcher is alive is left alone by the next one
        third = subprocess.run([mlproj_bin(), 'run', str(spawner), '-P', f'pidfile={tmp_path / "third"}', '-P',
                                'mode=quick', '--run-name', 'third'], cwd=tmp_path,
                               env={**os.environ, 'MLFLOW_TRACKING_URI': store}, capture_output=True, text=True,
                               timeout=180, stdin=subprocess.DEVNULL)
        assert third.returncode == 0, third.stderr
        assert 'ended stale run' not in third.stderr
        runs = runs_by_name(store)
        assert runs['dead'].info.status == 'FAILED' and 'no longer running' in runs['dead'].data.tags['mlproj.stale']
        assert runs['live'].info.status == 'RUNNING' and 'mlproj.stale' not in runs['live'].data.tags
        assert runs['third'].info.status == 'FINISHED'
    finally:
        live.send_signal(signal.SIGTERM)
        _, live_err = live.communicate(timeout=60)
    assert live.returncode == 143
    assert 'ended stale run ' + runs['dead'].info.run_id in live_err
    assert runs_by_name(store)['live'].info.status == 'KILLED'
    assert wait_gone(dead_pids + live_pids, 5.0) == []


@pytest.mark.parametrize('sig,code', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_cancel_reaches_a_setsid_escapee(spawner, tmp_path, sqlite_store, sig, code):
    proc, pids = start(spawner, tmp_path, sqlite_store, '--run-name', f'cancel-{sig}')
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert wait_gone(pids, 1.0) == [], 'a process of the run survived the cancel'
    assert runs_by_name(sqlite_store)[f'cancel-{sig}'].info.status == 'KILLED'


def test_leftovers_of_a_finished_command_are_terminated(spawner, tmp_path, sqlite_store):
    pidfile = tmp_path / 'quick'
    r = subprocess.run([mlproj_bin(), 'run', str(spawner), '-P', f'pidfile={pidfile}', '-P', 'mode=quick',
                        '--run-name', 'quick'], cwd=tmp_path,
                       env={**os.environ, 'MLFLOW_TRACKING_URI': sqlite_store, 'MLPROJ_KILL_GRACE': '2'},
                       capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    pids = [int(p) for p in pidfile.read_text().split()]
    assert wait_gone(pids, 1.0) == []
    assert runs_by_name(sqlite_store)['quick'].info.status == 'FINISHED'


def test_exit_status_of_a_signalled_command_is_kept(tmp_path, sqlite_store):
    proj = write_project(tmp_path / 'k', 'entry_points:\n  main:\n    command: "kill -9 $$"\n')
    r = subprocess.run([mlproj_bin(), 'run', str(proj)], cwd=tmp_path,
                       env={**os.environ, 'MLFLOW_TRACKING_URI': sqlite_store}, capture_output=True, text=True,
                       timeout=180, stdin=subprocess.DEVNULL)
    assert r.returncode == 137, r.stderr
    assert 'failed' in r.stderr


def test_launcher_on_another_host_or_alive_is_never_stale():
    from mlproj import stale

    mine = stale.launcher_tags()
    assert stale.why_dead(mine) is None                                   # this very process
    assert stale.why_dead({**mine, stale.HOST: 'elsewhere'}) is None       # can't tell: left alone
    assert stale.why_dead({**mine, stale.PIDNS: 'pid:[1]'}) is None        # another container
    assert stale.why_dead({}) is None                                     # not launched by mlproj
    assert 'no longer running' in stale.why_dead({**mine, stale.START: '1'})  # pid reused by another process
    assert 'reboot' in stale.why_dead({**mine, stale.BOOT: 'another-boot'})
