"""End-to-end `mlproj run` against real MLflow stores (sqlite file and a real `mlflow server`)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers import mlproj_bin, run_mlproj, signal_once_started, write_project
from tests.helpers.git import commit_all, git

pytestmark = pytest.mark.slow  # every test drives `mlproj run` as a subprocess against sqlite and a real server

PY = sys.executable
TRACKING_SCRIPT = textwrap.dedent('''\
    import sys, mlflow
    use_start_run = sys.argv[1] == "1"
    if use_start_run:
        with mlflow.start_run():
            mlflow.log_metric("some_key", 3)
    else:
        mlflow.log_metric("some_key", 3)
''')

PROJECT = f'''\
name: e2e
entry_points:
  main:
    parameters:
      alpha: {{type: float, default: 0.1}}
      name: string
    command: "{PY} echo.py {{alpha}} {{name}}"
  test_tracking:
    parameters:
      use_start_run: {{type: bool, default: true}}
    command: "{PY} tracking_test.py {{use_start_run}}"
  fail:
    parameters:
      code: {{type: int, default: 3}}
    command: "echo failing; exit {{code}}"
  sleep:
    parameters:
      pidfile: string
    command: "sleep 300 & echo $! > {{pidfile}}; echo $$ >> {{pidfile}}; wait"
'''


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def all_runs(uri: str) -> list:
    c = client(uri)
    exps = [e.experiment_id for e in c.search_experiments()]
    return c.search_runs(exps) if exps else []


@pytest.fixture(scope='module')
def project(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp('proj')
    return write_project(d, PROJECT, {
        'echo.py': 'import sys; print("ARGS", sys.argv[1:])\n',
        'tracking_test.py': TRACKING_SCRIPT,
        'script.py': 'import sys, os; print("SCRIPT", sys.argv[1:], os.environ["MLFLOW_RUN_ID"])\n',
        'tool.sh': 'echo "SH $@"\n',
    })


def mlproj(args: list[str], *, cwd: Path, uri: str | None = None, env: dict | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess:
    return run_mlproj(*args, cwd=cwd, env={**({'MLFLOW_TRACKING_URI': uri} if uri else {}), **(env or {})},
                      timeout=timeout)


@pytest.fixture(params=['sqlite', 'server'])
def store(request, sqlite_store):
    if request.param == 'sqlite':
        return sqlite_store
    return request.getfixturevalue('mlflow_server')


def test_run_records_params_tags_and_status(project, store, tmp_path):
    r = mlproj(['run', str(project), '-P', 'name=a b', '-P', "extra=it's", '--experiment-name', 'e2e',
                '--run-name', 'first'], cwd=tmp_path, uri=store)
    assert r.returncode == 0, r.stderr
    assert "ARGS ['0.1', 'a b', '--extra', \"it's\"]" in r.stdout
    (run,) = [x for x in all_runs(store) if x.data.tags.get('mlflow.runName') == 'first']
    assert run.info.status == 'FINISHED'
    # values are logged as the program received them, not shell-quoted (MLflow issue #6811)
    assert run.data.params == {'alpha': '0.1', 'name': 'a b', 'extra': "it's"}
    tags = run.data.tags
    assert tags['mlflow.source.type'] == 'PROJECT'
    assert tags['mlflow.source.name'] == str(project)
    assert tags['mlflow.project.entryPoint'] == 'main'
    assert tags['mlflow.project.backend'] == 'local'
    assert tags['mlflow.user']
    assert 'mlflow.project.env' not in tags  # MLflow sets no env tag for local
    assert client(store).get_experiment(run.info.experiment_id).name == 'e2e'


@pytest.mark.parametrize('use_start_run', ['1', '0'])
def test_child_logs_into_the_same_run(project, store, tmp_path, use_start_run):
    r = mlproj(['run', str(project), '-e', 'test_tracking', '-P', f'use_start_run={use_start_run}',
                '--run-name', f'track-{use_start_run}'], cwd=tmp_path, uri=store)
    assert r.returncode == 0, r.stderr
    runs = [x for x in all_runs(store) if x.data.tags.get('mlflow.runName') == f'track-{use_start_run}']
    assert len(runs) == 1
    assert runs[0].data.metrics == {'some_key': 3.0}
    assert runs[0].info.status == 'FINISHED'


def test_child_failure_exit_code_and_failed_status(project, sqlite_store, tmp_path):
    r = mlproj(['run', str(project), '-e', 'fail', '-P', 'code=7', '--run-name', 'fails'], cwd=tmp_path,
               uri=sqlite_store)
    assert r.returncode == 7
    assert 'failing' in r.stdout
    (run,) = [x for x in all_runs(sqlite_store) if x.data.tags.get('mlflow.runName') == 'fails']
    assert run.info.status == 'FAILED'


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f'/proc/{pid}/stat') as f:
            return f.read().split()[2] != 'Z'
    except OSError:
        return False


@pytest.mark.parametrize('sig,code', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_cancels_run_killed_and_no_process_survives(project, sqlite_store, tmp_path, sig, code):
    pidfile = tmp_path / 'pids'
    env = dict(os.environ, MLFLOW_TRACKING_URI=sqlite_store, MLPROJ_KILL_GRACE='2')
    proc = subprocess.Popen([mlproj_bin(), 'run', str(project), '-e', 'sleep', '-P', f'pidfile={pidfile}',
                             '--run-name', f'sig-{sig}'], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (pidfile.exists() and len(pidfile.read_text().split()) == 2):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    pids = [int(p) for p in pidfile.read_text().split()]
    assert all(_alive(p) for p in pids)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert 'interrupted, cancelling run' in err
    time.sleep(0.2)
    assert not any(_alive(p) for p in pids), 'a process of the run survived'
    (run,) = [x for x in all_runs(sqlite_store) if x.data.tags.get('mlflow.runName') == f'sig-{sig}']
    assert run.info.status == 'KILLED'


def test_a_signal_in_the_last_steps_of_a_submission_cancels_the_started_run(project, sqlite_store, tmp_path,
                                                                            monkeypatch, capsys):
    """A real run in this process, SIGTERM sent to it once the command runs but before the
    submission has returned (where the CLI once said "while starting the run" and left it)."""
    from mlproj.commands.run_body import execute
    from mlproj.request import RunRequest

    pidfile = tmp_path / 'pids'
    signal_once_started(monkeypatch, lambda: pidfile.exists() and len(pidfile.read_text().split()) == 2)
    monkeypatch.setenv('MLPROJ_KILL_GRACE', '2')
    before = signal.getsignal(signal.SIGTERM)
    code = execute(RunRequest(uri=str(project), entry_point='sleep', parameters={'pidfile': str(pidfile)},
                              run_name='held', tracking_uri=sqlite_store, cwd=str(tmp_path), env_manager='local'))
    assert code == 143
    err = capsys.readouterr().err
    assert 'interrupted, cancelling run' in err and 'while starting' not in err
    assert signal.getsignal(signal.SIGTERM) is before
    pids = [int(p) for p in pidfile.read_text().split()]
    time.sleep(0.2)
    assert not any(_alive(p) for p in pids), 'a process of the run survived'
    (run,) = [x for x in all_runs(sqlite_store) if x.data.tags.get('mlflow.runName') == 'held']
    assert run.info.status == 'KILLED'


def test_group_is_killed_after_grace_when_child_ignores_sigterm(tmp_path, sqlite_store):
    pidfile = tmp_path / 'pid'
    write_project(tmp_path / 'p', f'entry_points:\n  main:\n    command: "{PY} stubborn.py {pidfile}"\n', {
        'stubborn.py': textwrap.dedent('''\
            import os, signal, sys, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            open(sys.argv[1], "w").write(str(os.getpid()))
            time.sleep(300)
        '''),
    })
    env = dict(os.environ, MLFLOW_TRACKING_URI=sqlite_store, MLPROJ_KILL_GRACE='1')
    proc = subprocess.Popen([mlproj_bin(), 'run', str(tmp_path / 'p'), '--run-name', 'stubborn'], cwd=tmp_path,
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (pidfile.exists() and pidfile.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    pid = int(pidfile.read_text())
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    time.sleep(0.2)
    assert not _alive(pid)
    (run,) = [x for x in all_runs(sqlite_store) if x.data.tags.get('mlflow.runName') == 'stubborn']
    assert run.info.status == 'KILLED'


@pytest.mark.parametrize('args,code,message', [
    (['-P', 'alpha=abc', '-P', 'name=x'], 66, "parameter 'alpha' expects a float (ASCII digits, 1e-3, inf, nan), got 'abc'"),
    ([], 66, "missing value for parameter 'name'"),
    (['-e', 'nope'], 65, "unknown entry point 'nope'"),
    (['-P', 'name'], 64, 'use -P name=value'),
    (['-b', 'nowhere', '-P', 'name=x'], 69, "unknown backend 'nowhere'"),
    (['-c', '{bad json', '-P', 'name=x'], 64, 'invalid backend config JSON'),
    (['--experiment-name', 'a', '--experiment-id', '1', '-P', 'name=x'], 64, 'only one of'),
    (['--experiment-id', '987654', '-P', 'name=x'], 70, "experiment id '987654' does not exist"),
])
def test_user_errors_are_one_line_and_create_no_run(project, tmp_path, args, code, message):
    uri = f'sqlite:///{tmp_path}/errors.db'
    r = mlproj(['run', str(project), *args], cwd=tmp_path, uri=uri)
    assert r.returncode == code, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith('mlproj: error: ') and message in lines[-1]
    assert 'Traceback' not in r.stderr
    if (tmp_path / 'errors.db').exists():
        assert all_runs(uri) == []


def test_malformed_mlproject_names_file_line_col(tmp_path):
    write_project(tmp_path / 'bad', 'entry_points:\n  main:\n    command: [unclosed\n')
    r = mlproj(['run', str(tmp_path / 'bad')], cwd=tmp_path, uri=f'sqlite:///{tmp_path}/x.db')
    assert r.returncode == 65
    assert f"{tmp_path / 'bad' / 'MLproject'}:4:1" in r.stderr and 'MLP001' in r.stderr
    assert not (tmp_path / 'x.db').exists()


def test_failure_after_run_creation_marks_it_failed(project, sqlite_store, tmp_path):
    # bash cannot be found once the run exists: the run must end FAILED, not stay RUNNING
    r = mlproj(['run', str(project), '-P', 'name=x', '--run-name', 'nobash'], cwd=tmp_path, uri=sqlite_store,
               env={'PATH': str(tmp_path / 'empty')})
    assert r.returncode == 68, r.stderr
    assert "cannot start 'bash'" in r.stderr
    (run,) = [x for x in all_runs(sqlite_store) if x.data.tags.get('mlflow.runName') == 'nobash']
    assert run.info.status == 'FAILED'


def test_no_run_is_left_running(sqlite_store):
    assert [r.info.run_id for r in all_runs(sqlite_store) if r.info.status == 'RUNNING'] == []


def test_dry_run_creates_nothing(project, tmp_path):
    r = mlproj(['run', str(project), '--dry-run', '-P', 'name=$(rm -rf x)'], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"{PY} echo.py 0.1 '$(rm -rf x)'" in r.stdout
    assert 'mlflow.project.entryPoint = main' in r.stdout
    assert list(tmp_path.iterdir()) == []  # no mlflow.db, no mlruns


def test_convention_scripts(project, sqlite_store, tmp_path):
    r = mlproj(['run', str(project), '-e', 'script.py', '-P', 'x=a b', '--env-manager', 'local'], cwd=tmp_path,
               uri=sqlite_store)
    assert r.returncode == 0, r.stderr
    assert "SCRIPT ['--x', 'a b']" in r.stdout
    r = mlproj(['run', str(project), '-e', 'tool.sh', '-P', 'k=v'], cwd=tmp_path, uri=sqlite_store)
    assert r.returncode == 0, r.stderr
    assert 'SH --k v' in r.stdout


def test_relative_tracking_uri_reaches_child_absolute(project, tmp_path):
    r = mlproj(['run', str(project), '-e', 'test_tracking', '--run-name', 'rel'], cwd=tmp_path,
               uri='sqlite:///rel.db')
    assert r.returncode == 0, r.stderr
    (run,) = all_runs(f'sqlite:///{tmp_path}/rel.db')
    assert run.data.metrics == {'some_key': 3.0}
    assert not (project / 'rel.db').exists()


def test_resume_existing_run(project, sqlite_store, tmp_path):
    c = client(sqlite_store)
    run = c.create_run('0')
    r = mlproj(['run', str(project), '-P', 'name=x', '--run-id', run.info.run_id], cwd=tmp_path, uri=sqlite_store)
    assert r.returncode == 0, r.stderr
    got = c.get_run(run.info.run_id)
    assert got.info.status == 'FINISHED' and got.data.params['name'] == 'x'
    r = mlproj(['run', str(project), '-P', 'name=x', '--run-id', run.info.run_id], cwd=tmp_path, uri=sqlite_store)
    assert r.returncode == 70 and 'has status FINISHED' in r.stderr


def test_git_commit_tag_for_local_repo(tmp_path, sqlite_store):
    repo = write_project(tmp_path / 'repo' / 'sub', 'entry_points:\n  main:\n    command: "true"\n').parent
    git('init', '-q', str(repo))
    sha = commit_all(repo, 'c')
    r = mlproj(['run', f'{repo}#sub', '--run-name', 'gitlocal'], cwd=tmp_path, uri=sqlite_store)
    assert r.returncode == 0, r.stderr
    (run,) = [x for x in all_runs(sqlite_store) if x.data.tags.get('mlflow.runName') == 'gitlocal']
    assert run.data.tags['mlflow.source.git.commit'] == sha
    assert run.data.tags['mlflow.source.name'] == f'file://{repo}#sub'
    assert run.data.tags['mlflow.source.git.dirty'] == 'false'


def test_help_does_not_import_heavy_modules():
    out = subprocess.run([PY, '-X', 'importtime', '-m', 'mlproj', '--help'], capture_output=True, text=True)
    assert out.returncode == 0 and 'run' in out.stdout
    imported = {line.split('|')[-1].strip().split('.')[0] for line in out.stderr.splitlines() if '|' in line}
    assert not imported & {'mlflow', 'pygit2', 'databricks', 'github', 'ray', 'kubernetes', 'sqlalchemy', 'yaml'}


def test_python_api_sync_async_and_cancel(project, sqlite_store, tmp_path, monkeypatch):
    import mlproj

    monkeypatch.setenv('MLFLOW_TRACKING_URI', sqlite_store)
    monkeypatch.chdir(tmp_path)
    done = mlproj.run(str(project), 'main', parameters={'name': 'api'})
    assert done.get_status() == 'FINISHED' and done.wait()
    with pytest.raises(mlproj.RunFailed) as e:
        mlproj.run(str(project), 'fail')
    assert e.value.exit_code == 3
    pidfile = tmp_path / 'apipids'
    running = mlproj.run(str(project), 'sleep', parameters={'pidfile': str(pidfile)}, synchronous=False)
    assert running.get_status() == 'RUNNING'
    running.cancel()
    assert running.get_status() == 'KILLED' and not running.wait()
    assert client(sqlite_store).get_run(running.run_id).info.status == 'KILLED'


def test_no_wait_is_refused_for_local_runs(project, tmp_path):
    r = mlproj(['run', str(project), '-P', 'name=x', '--no-wait'], cwd=tmp_path, uri=f'sqlite:///{tmp_path}/n.db')
    assert r.returncode == 64 and '--no-wait needs a remote backend' in r.stderr
    assert not (tmp_path / 'n.db').exists()
