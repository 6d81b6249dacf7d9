"""docker_env against a real Docker engine (dockerd started by the session fixture)."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mlproj.envs import EnvContext, prepare, select_manager
from mlproj.errors import EnvError
from mlproj.spec import load_project
from tests.helpers.envs import BUSYBOX_IMAGE, containers, write_project


def docker_project(tmp_path: Path, entry: str, extra_env: str = '', volumes: str = '[]', files: dict | None = None,
                   name: str = 'dock') -> Path:
    text = (f'name: {name}\ndocker_env:\n  image: {BUSYBOX_IMAGE}\n  volumes: {volumes}\n'
            f'  environment: [["GREETING", "hello world"]{extra_env}]\n'
            f'entry_points:\n  main:\n    parameters:\n      x: {{type: string, default: "a b"}}\n'
            f'    command: "{entry}"\n  sleep:\n    command: "sleep 300"\n')
    return write_project(tmp_path / name, {'MLproject': text, **(files or {})})


def prep(project_dir: Path, **ctx):
    log = io.StringIO()
    project = load_project(project_dir)
    env = prepare(project, select_manager(project, 'uv'), EnvContext(log=log, **ctx))
    return env, log.getvalue()


def in_container(env, command: str, cwd: Path, extra: dict | None = None) -> str:
    argv, child = env.argv(command, dict(os.environ, **(extra or {})), cwd)
    out = subprocess.run(argv, env=child, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_run_with_volumes_environment_and_docker_args(tmp_path, docker_host, file_store, monkeypatch):
    import mlflow

    import mlproj

    data = tmp_path / 'data'
    data.mkdir()
    monkeypatch.setenv('HOSTVAR', 'from host')
    store_dir = file_store[len('file://'):]
    cmd = ('echo \\"$GREETING|$HOSTVAR|$FROMARG|$(hostname)|$(pwd)|$MLFLOW_RUN_ID\\" > /data/out.txt; '
           f'echo {{x}} >> /data/out.txt; test -d {store_dir} && echo store-visible >> /data/out.txt; '
           'ls >> /data/out.txt')
    proj = docker_project(tmp_path, cmd, extra_env=', "HOSTVAR"', volumes=f'["{data}:/data"]')
    assert select_manager(load_project(proj), 'uv') == 'docker'  # docker_env wins, as in MLflow
    submitted = mlproj.run(str(proj), 'main', tracking_uri=file_store, parameters={'x': 'it works'},
                           docker_args={'hostname': 'mlproj-box', 'e': 'FROMARG=yes'})
    lines = (data / 'out.txt').read_text().splitlines()
    assert lines[0] == f'hello world|from host|yes|mlproj-box|/mlflow/projects/code|{submitted.run_id}'
    assert lines[1:3] == ['it works', 'store-visible']
    assert 'MLproject' in lines[3:]  # the project is mounted as the working directory
    run = mlflow.MlflowClient(file_store).get_run(submitted.run_id)
    assert run.info.status == 'FINISHED'
    assert run.data.tags['mlflow.project.env'] == 'docker'
    image_id = subprocess.run(['docker', 'image', 'inspect', '--format', '{{.Id}}', BUSYBOX_IMAGE],
                              capture_output=True, text=True).stdout.strip()
    assert run.data.tags['mlproj.env.hash'] == image_id.split(':', 1)[1]
    assert containers(docker_host) == []  # --rm


def test_environment_values_never_reach_the_command_line(tmp_path, docker_host, monkeypatch):
    monkeypatch.setenv('HOSTVAR', 's3cr3t-value')
    proj = docker_project(tmp_path, 'true', extra_env=', "HOSTVAR"')
    env, _ = prep(proj, run_id='abc123')
    argv, child = env.argv('echo $HOSTVAR', dict(os.environ, MLFLOW_RUN_ID='abc123'), proj)
    assert not any('s3cr3t-value' in a or 'hello world' in a for a in argv)
    assert child['HOSTVAR'] == 's3cr3t-value' and child['GREETING'] == 'hello world'
    assert argv[argv.index('--name') + 1] == 'mlproj-abc123'
    assert '--init' in argv and argv[-3:] == ['sh', '-c', 'echo $HOSTVAR']
    assert env.extra_tags == {'mlflow.docker.image.uri': BUSYBOX_IMAGE, 'mlflow.docker.image.id': env.image_id}


def test_sqlite_store_is_mounted_at_its_own_path(tmp_path, docker_host):
    db_dir = tmp_path / 'store'
    db_dir.mkdir()
    (db_dir / 'mlflow.db').write_text('x')
    uri = f'sqlite:///{db_dir}/mlflow.db'
    proj = docker_project(tmp_path, 'true')
    env, _ = prep(proj, tracking_uri=uri)
    out = in_container(env, f'cat {db_dir}/mlflow.db; echo; echo $MLFLOW_TRACKING_URI', proj,
                       {'MLFLOW_TRACKING_URI': uri})
    assert out.split() == ['x', uri]


def test_http_tracking_server_is_reached_from_the_container(tmp_path, docker_host, mlflow_server):
    """The container logs a metric to a real `mlflow server` on the host's loopback (host network)."""
    import mlflow

    import mlproj

    post = ('wget -q -O- --header Content-Type:application/json --post-data '
            '\\"{\\\\\\"run_id\\\\\\": \\\\\\"$MLFLOW_RUN_ID\\\\\\", \\\\\\"key\\\\\\": \\\\\\"from_container\\\\\\", '
            '\\\\\\"value\\\\\\": 42, \\\\\\"timestamp\\\\\\": 0, \\\\\\"step\\\\\\": 0}\\" '
            '$MLFLOW_TRACKING_URI/api/2.0/mlflow/runs/log-metric')
    proj = docker_project(tmp_path, post)
    submitted = mlproj.run(str(proj), 'main', tracking_uri=mlflow_server)
    run = mlflow.MlflowClient(mlflow_server).get_run(submitted.run_id)
    assert run.info.status == 'FINISHED'
    assert run.data.metrics == {'from_container': 42.0}


def test_build_image_honours_dockerignore_and_is_reused(tmp_path, docker_host):
    files = {'.dockerignore': '# secrets stay out\nsecret*\n*.log\n!keep.log\n', 'secret.txt': 'pw',
             'a.log': 'x', 'keep.log': 'k', 'sub/data.txt': 'd', '.git/config': '[core]\n'}
    proj = docker_project(tmp_path, 'true', files=files, name='Build Me')
    env, log = prep(proj, build_image=True)
    assert 'Building image mlproj-build-me:' in log
    assert env.image == f'mlproj-build-me:{env.hash[:12]}'
    assert env.extra_tags['mlflow.docker.image.id'].startswith('sha256:')
    argv, _ = env.argv('true', {}, proj)
    assert not any(a.endswith(':/mlflow/projects/code') for a in argv)  # the code is in the image
    listing = in_container(env, 'find . -type f | sort', proj).split()
    assert listing == ['./.dockerignore', './MLproject', './keep.log', './sub/data.txt']
    again, log2 = prep(proj, build_image=True)
    assert (again.image, again.image_id) == (env.image, env.image_id) and log2 == ''
    (proj / 'sub' / 'data.txt').write_text('changed')
    changed, log3 = prep(proj, build_image=True)
    assert changed.image != env.image and 'Building image' in log3
    (proj / 'secret.txt').write_text('another secret')  # ignored files do not change the image
    same, log4 = prep(proj, build_image=True)
    assert same.image == changed.image and log4 == ''


def _start_sleeping_run(tmp_path: Path, file_store: str):
    import mlproj

    proj = docker_project(tmp_path, 'true')
    submitted = mlproj.run(str(proj), 'sleep', tracking_uri=file_store, synchronous=False)
    name = f'mlproj-{submitted.run_id}'
    deadline = time.monotonic() + 60
    while name not in containers(os.environ['DOCKER_HOST'], all_=False):
        assert time.monotonic() < deadline, 'the container never started'
        assert submitted.get_status() == 'RUNNING'
        time.sleep(0.2)
    return submitted, name


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGKILL])
def test_killed_run_leaves_no_container(tmp_path, docker_host, file_store, sig):
    import mlflow

    submitted, name = _start_sleeping_run(tmp_path, file_store)
    started = time.monotonic()
    submitted.cancel(sig)
    assert submitted.get_status() == 'KILLED'
    deadline = time.monotonic() + 30
    while name in containers(docker_host):
        assert time.monotonic() < deadline, f'container {name} outlived the run'
        time.sleep(0.2)
    assert time.monotonic() - started < 30
    assert mlflow.MlflowClient(file_store).get_run(submitted.run_id).info.status == 'KILLED'


def test_copied_variable_missing_on_host(tmp_path, docker_host, monkeypatch):
    monkeypatch.delenv('NOT_SET_ANYWHERE', raising=False)
    proj = docker_project(tmp_path, 'true', extra_env=', "NOT_SET_ANYWHERE"')
    with pytest.raises(EnvError, match='copies variables that are not set on this machine: NOT_SET_ANYWHERE'):
        prep(proj)


def test_missing_image_is_pulled_and_the_failure_reported(tmp_path, docker_host):
    proj = write_project(tmp_path / 'p', {'MLproject': 'name: p\ndocker_env:\n  image: local/does-not-exist:1\n'})
    with pytest.raises(EnvError, match=r'^pulling image local/does-not-exist:1 failed: '):
        prep(proj)


def test_engine_choice(tmp_path, monkeypatch):
    monkeypatch.setenv('MLPROJ_CONTAINER_ENGINE', 'no-such-engine')
    proj = docker_project(tmp_path, 'true')
    with pytest.raises(EnvError, match="MLPROJ_CONTAINER_ENGINE is 'no-such-engine'"):
        prep(proj)
    monkeypatch.delenv('MLPROJ_CONTAINER_ENGINE')
    monkeypatch.setenv('PATH', str(tmp_path))  # neither docker nor podman
    with pytest.raises(EnvError, match='no container engine found'):
        prep(proj)


def test_build_context_refuses_fifos_and_outside_dockerignore(tmp_path):
    """The context is read through the project-file reader: nothing blocks, nothing outside is read."""
    from mlproj.envs.docker import context_files, context_hash
    from tests.helpers import write_project

    proj = write_project(tmp_path / 'p', 'name: p\ndocker_env: {image: img}\nentry_points: {main: {command: "true"}}\n')
    os.mkfifo(proj / 'pipe')
    files = context_files(proj)
    assert 'pipe' in files
    with pytest.raises(EnvError, match="build context file 'pipe' is refused: it is a FIFO"):
        context_hash(proj, files, 'base', 'FROM x\n')
    (proj / 'pipe').unlink()
    outside = tmp_path / 'ignore-rules'
    outside.write_text('*\n')
    (proj / '.dockerignore').symlink_to(outside)
    with pytest.raises(EnvError, match='.dockerignore is refused: it resolves outside the repository root'):
        context_files(proj, proj)
