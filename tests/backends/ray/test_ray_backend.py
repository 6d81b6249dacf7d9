"""``mlproj run -b ray`` against a real Ray head on loopback."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.backends.ray.ray_helpers import free_port, run_id_of
from tests.helpers import interrupt_on_line, mlproj_argv

MLPROJECT = '''
name: raytest
entry_points:
  main:
    parameters:
      word: {type: string, default: "it's a $HOME; day"}
    command: >-
      python -c "import os, sys; print('WORD=' + sys.argv[1]); print('RUN=' + os.environ['MLFLOW_RUN_ID']);
      print('EXP=' + os.environ['MLFLOW_EXPERIMENT_ID']); print('FILE=' + open('data.txt').read().strip())" {word}
      && env
  fail:
    command: "echo about to fail; exit 3"
  slow:
    command: "echo started; sleep 120; echo never"
'''


def cfg(address: str, **extra) -> str:
    return json.dumps({'address': address, **extra})


def test_success_streams_output_and_records_finished(ray_head, ray_client, project, run_mlproj, mlflow_client,
                                                     monkeypatch):
    monkeypatch.setenv('MLFLOW_TRACKING_TOKEN', 'tok-SECRET-123')   # must not reach the job spec
    monkeypatch.setenv('MLPROJ_GIT_TOKEN', 'git-SECRET-456')
    proj = project(MLPROJECT, {'data.txt': 'shipped with the project\n'})
    res = run_mlproj('run', str(proj), '-b', 'ray', '-c', cfg(ray_head.address), '-P', 'word=a b"c\'d $x')
    assert res.returncode == 0, res.stderr
    run_id = run_id_of(mlflow_client)
    assert 'WORD=a b"c\'d $x' in res.stdout            # the value arrives byte-exact through bash -c
    assert f'RUN={run_id}' in res.stdout                # MLFLOW_* variables reach the job
    assert 'EXP=0' in res.stdout
    assert 'FILE=shipped with the project' in res.stdout  # working_dir = the project
    run = mlflow_client.get_run(run_id)
    assert run.info.status == 'FINISHED'
    assert run.data.tags['mlproj.ray.submission_id'] == f'mlproj-{run_id}'
    assert run.data.tags['mlflow.project.backend'] == 'ray'
    assert run.data.params == {'word': 'a b"c\'d $x'}
    info = ray_client.get_job_info(f'mlproj-{run_id}')
    assert info.status == 'SUCCEEDED'
    assert info.metadata['mlflow_run_id'] == run_id
    assert info.runtime_env['env_vars']['MLFLOW_RUN_ID'] == run_id
    assert f"Run (ID '{run_id}') succeeded" in res.stderr
    spec = json.dumps({'runtime_env': info.runtime_env, 'entrypoint': info.entrypoint, 'metadata': info.metadata})
    assert 'SECRET' not in spec
    assert 'SECRET' not in res.stdout + res.stderr      # `env` ran in the job: no token there either
    assert 'Uploading package' not in res.stderr        # Ray's INFO chatter is silenced


def test_failure_exit_code_is_the_jobs(ray_head, ray_client, project, run_mlproj, mlflow_client):
    proj = project(MLPROJECT)
    res = run_mlproj('run', str(proj), '-e', 'fail', '-b', 'ray', '-c', cfg(ray_head.address))
    assert res.returncode == 3, res.stderr
    assert 'about to fail' in res.stdout
    run_id = run_id_of(mlflow_client)
    assert mlflow_client.get_run(run_id).info.status == 'FAILED'
    assert ray_client.get_job_status(f'mlproj-{run_id}') == 'FAILED'
    assert 'Traceback' not in res.stderr


def test_ctrl_c_stops_the_job_and_records_killed(ray_head, ray_client, project, tracking_uri, mlflow_client, tmp_path):
    proj = project(MLPROJECT)
    proc = subprocess.Popen(mlproj_argv('run', str(proj), '-e', 'slow', '-b', 'ray', '-c', cfg(ray_head.address)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    out, err = interrupt_on_line(proc, 'started')
    assert proc.returncode == 130, err
    assert 'never' not in out
    run_id = run_id_of(mlflow_client)
    assert mlflow_client.get_run(run_id).info.status == 'KILLED'
    assert ray_client.get_job_status(f'mlproj-{run_id}') == 'STOPPED'


def test_no_wait_then_wait_via_api(ray_head, ray_client, project, tracking_uri, mlflow_client, monkeypatch):
    import mlproj

    proj = project(MLPROJECT)
    monkeypatch.setenv('RAY_ADDRESS', ray_head.address)  # the address may come from the environment
    submitted = mlproj.run(str(proj), 'fail', backend='ray', synchronous=False)
    assert submitted.get_status() in ('SCHEDULED', 'RUNNING', 'FAILED')
    assert mlflow_client.get_run(submitted.run_id).info.status == 'RUNNING'  # nobody watches yet
    assert submitted.wait() is False
    assert submitted.get_status() == 'FAILED'
    assert submitted.exit_code == 3
    assert mlflow_client.get_run(submitted.run_id).info.status == 'FAILED'


def test_unreachable_cluster_is_one_line_and_run_failed(ray_head, project, run_mlproj, mlflow_client):
    proj = project(MLPROJECT)
    res = run_mlproj('run', str(proj), '-b', 'ray', '-c', cfg(f'http://127.0.0.1:{free_port()}'))
    assert res.returncode == 69, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith('mlproj: error:')]
    assert len(errors) == 1 and 'cannot reach the Ray cluster' in errors[0], res.stderr
    assert 'Traceback' not in res.stderr
    assert mlflow_client.get_run(run_id_of(mlflow_client)).info.status == 'FAILED'


def _run_in_process(proj, config):
    import mlproj
    from mlproj.errors import BackendError

    with pytest.raises(BackendError) as err:
        mlproj.run(str(proj), backend='ray', backend_config=config)
    assert err.value.exit_code == 69
    return str(err.value)


def test_missing_address(project, mlflow_client):
    message = _run_in_process(project(MLPROJECT), {})
    assert 'no Ray cluster address' in message and 'RAY_ADDRESS' in message
    assert mlflow_client.get_run(run_id_of(mlflow_client)).info.status == 'FAILED'


@pytest.mark.parametrize('config, key', [
    ({'adress': 'http://x'}, "unknown key 'adress' (did you mean 'address'?)"),
    ({'address': 'http://x', 'entrypoint_num_cpus': 'two'}, "key 'entrypoint_num_cpus'"),
    ({'address': 'http://x', 'pip_installer': 'conda'}, "key 'pip_installer'"),
    ({'address': 'http://x', 'runtime_env': {'env_vars': ['A=1']}}, "'runtime_env': env_vars"),
])
def test_bad_config_names_the_key(project, mlflow_client, config, key):
    message = _run_in_process(project(MLPROJECT), config)
    assert key in message and 'ray backend config' in message
    assert '\n' not in message
    assert mlflow_client.get_run(run_id_of(mlflow_client)).info.status == 'FAILED'


def test_python_env_becomes_pip_runtime_env(ray_head, ray_client, project, run_mlproj, mlflow_client):
    """python_env.yaml dependencies are installed by Ray for the job (a real pip install from PyPI)."""
    mlproject = '''
name: withdeps
python_env: python_env.yaml
entry_points:
  main:
    command: python -c "import inflection; print('OK', inflection.underscore('MlProj'))"
'''
    proj = project(mlproject, {'python_env.yaml': 'python: "3.11"\nbuild_dependencies: [pip]\n'
                                                  'dependencies:\n  - -r requirements.txt\n',
                               'requirements.txt': '# pinned\ninflection==0.5.1\n'})
    res = run_mlproj('run', str(proj), '-b', 'ray', '-c', cfg(ray_head.address, pip_installer='uv'), timeout=240)
    assert res.returncode == 0, res.stderr + res.stdout
    assert 'OK ml_proj' in res.stdout
    run_id = run_id_of(mlflow_client)
    assert mlflow_client.get_run(run_id).data.tags['mlproj.ray.runtime_env'] == 'uv'
    env = ray_client.get_job_info(f'mlproj-{run_id}').runtime_env
    # build_dependencies are installed too, as the uv and virtualenv managers install them
    assert env['uv']['packages'] == ['pip', 'inflection==0.5.1']
