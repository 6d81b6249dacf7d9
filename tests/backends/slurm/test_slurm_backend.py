"""``mlproj run -b slurm`` against a real single-node Slurm cluster."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.backends.slurm.slurm_helpers import run_id_of
from tests.helpers import interrupt_on_line, mlproj_argv

MLPROJECT = '''
name: slurmtest
entry_points:
  main:
    parameters:
      word: {type: string, default: "x"}
    command: >-
      python3 -c "import os, sys; print('WORD=' + sys.argv[1]); print('RUN=' + os.environ['MLFLOW_RUN_ID']);
      print('CWD=' + os.getcwd()); print('FILE=' + open('data.txt').read().strip());
      print('TOKEN=' + ('set' if os.environ.get('MLFLOW_TRACKING_TOKEN') else 'unset'));
      print('JOB=' + os.environ['SLURM_JOB_ID'])" {word}
  fail:
    command: "echo about to fail; exit 3"
  slow:
    command: "echo started; sleep 120; echo never"
'''

CONFIG = {'partition': 'debug', 'time': '0:05:00', 'cpus_per_task': 1, 'mem': '100M',
          'sbatch_args': ['--comment=from-mlproj'], 'setup': ['echo setup-ran'], 'poll_interval': 0.3}


def test_success_runs_in_a_copy_and_records_finished(slurm, slurm_env, project, run_mlproj, mlflow_client,
                                                     monkeypatch):
    monkeypatch.setenv('MLFLOW_TRACKING_TOKEN', 'tok-SECRET-123')
    proj = project(MLPROJECT, {'data.txt': 'shipped\n'})
    res = run_mlproj('run', str(proj), '-b', 'slurm', '-c', json.dumps(CONFIG), '-P', 'word=a b"c\'d $x;`id`')
    assert res.returncode == 0, res.stderr
    run_id = run_id_of(mlflow_client)
    out = res.stdout
    assert 'setup-ran' in out
    assert 'WORD=a b"c\'d $x;`id`' in out
    assert f'RUN={run_id}' in out
    assert 'FILE=shipped' in out
    assert 'TOKEN=set' in out  # reaches the job through sbatch's exported environment...
    job_dir = slurm_env / run_id
    script = (job_dir / 'job.sbatch').read_text()
    assert 'SECRET' not in script  # ...never through the script on the shared filesystem
    assert f'CWD={job_dir / "project"}' in out
    assert not (job_dir / 'project').exists()  # the copy is removed once the job is over
    run = mlflow_client.get_run(run_id)
    assert run.info.status == 'FINISHED'
    job_id = run.data.tags['mlproj.slurm.job_id']
    assert f'JOB={job_id}' in out
    assert (job_dir / f'slurm-{job_id}.out').is_file()
    # the backend config reached Slurm itself
    assert slurm.job_field(job_id, 'Partition') == 'debug'
    assert slurm.job_field(job_id, 'TimeLimit') == '00:05:00'
    assert slurm.job_field(job_id, 'Comment') == 'from-mlproj'
    assert slurm.job_field(job_id, 'JobState') == 'COMPLETED'
    assert '#SBATCH --mem=100M' in script and '#SBATCH --cpus-per-task=1' in script


def test_failure_exit_code_is_the_jobs(slurm, slurm_env, project, run_mlproj, mlflow_client):
    res = run_mlproj('run', str(project(MLPROJECT)), '-e', 'fail', '-b', 'slurm', '-c', '{"poll_interval": 0.3}')
    assert res.returncode == 3, res.stderr
    assert 'about to fail' in res.stdout
    run = mlflow_client.get_run(run_id_of(mlflow_client))
    assert run.info.status == 'FAILED'
    assert slurm.job_field(run.data.tags['mlproj.slurm.job_id'], 'JobState') == 'FAILED'
    assert 'Traceback' not in res.stderr


def test_ctrl_c_cancels_the_job_and_records_killed(slurm, slurm_env, project, tracking_uri, mlflow_client, tmp_path):
    proc = subprocess.Popen(mlproj_argv('run', str(project(MLPROJECT)), '-e', 'slow', '-b', 'slurm'),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    out, err = interrupt_on_line(proc, 'started')
    assert proc.returncode == 130, err
    assert 'never' not in out
    run = mlflow_client.get_run(run_id_of(mlflow_client))
    assert run.info.status == 'KILLED'
    assert slurm.job_field(run.data.tags['mlproj.slurm.job_id'], 'JobState') == 'CANCELLED'


def test_python_env_is_prepared_and_used_by_the_job(slurm, slurm_env, project, run_mlproj, mlflow_client, tmp_path):
    mlproject = '''
name: withenv
python_env: python_env.yaml
entry_points:
  main:
    command: python -c "import sys, os; print('PREFIX=' + sys.prefix); print('VENV=' + os.environ['VIRTUAL_ENV'])"
'''
    proj = project(mlproject, {'python_env.yaml': 'python: "3.11"\ndependencies: []\n'})
    res = run_mlproj('run', str(proj), '-b', 'slurm', '--env-manager', 'uv', '-c', '{"poll_interval": 0.3}')
    assert res.returncode == 0, res.stderr
    cache = tmp_path / 'cache'
    prefix = next(ln[len('PREFIX='):] for ln in res.stdout.splitlines() if ln.startswith('PREFIX='))
    assert Path(prefix).is_relative_to(cache), prefix          # the job ran in mlproj's environment
    assert f'VENV={prefix}' in res.stdout
    run = mlflow_client.get_run(run_id_of(mlflow_client))
    assert run.data.tags['mlflow.project.env'] == 'uv'
    script = (slurm_env / run.info.run_id / 'job.sbatch').read_text()
    assert f"export VIRTUAL_ENV={prefix}" in script
    assert 'export PATH=' in script and '"${PATH:+:$PATH}"' in script  # prepended, the node keeps its own


def test_no_wait_then_wait_via_api(slurm, slurm_env, project, tracking_uri, mlflow_client):
    import mlproj

    submitted = mlproj.run(str(project(MLPROJECT)), 'fail', backend='slurm', synchronous=False,
                           backend_config={'poll_interval': 0.3})
    assert submitted.get_status() in ('SCHEDULED', 'RUNNING', 'FAILED')
    assert submitted.wait() is False
    assert submitted.get_status() == 'FAILED' and submitted.exit_code == 3
    assert mlflow_client.get_run(submitted.run_id).info.status == 'FAILED'


def test_unreachable_controller_is_one_line_and_run_failed(slurm, slurm_env, project, run_mlproj, mlflow_client,
                                                           monkeypatch):
    monkeypatch.setenv('SLURM_CONF', str(slurm.dead_config()))
    res = run_mlproj('run', str(project(MLPROJECT)), '-b', 'slurm')
    assert res.returncode == 69, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith('mlproj: error:')]
    assert len(errors) == 1 and 'sbatch failed: Batch job submission failed: Unable to contact slurm controller' \
        in errors[0], res.stderr
    run_id = run_id_of(mlflow_client)
    assert mlflow_client.get_run(run_id).info.status == 'FAILED'
    assert not (slurm_env / run_id).exists()  # nothing left on the shared filesystem


def test_missing_sbatch_is_one_line(slurm_env, project, mlflow_client, monkeypatch, tmp_path):
    import mlproj
    from mlproj.errors import BackendError

    empty = tmp_path / 'empty-bin'
    empty.mkdir()
    monkeypatch.setenv('PATH', str(empty))
    with pytest.raises(BackendError, match='sbatch not found on PATH'):
        mlproj.run(str(project(MLPROJECT)), backend='slurm')
    assert mlflow_client.get_run(run_id_of(mlflow_client)).info.status == 'FAILED'


@pytest.mark.parametrize('config, key', [
    ({'partion': 'debug'}, "unknown key 'partion' (did you mean 'partition'?)"),
    ({'time': '5 hours'}, "key 'time'"),
    ({'mem': '4GB; rm -rf /'}, "key 'mem'"),
    ({'sbatch_args': ['--output=/tmp/x']}, "key 'sbatch_args'"),
    ({'sbatch_args': ['--comment=a b']}, "key 'sbatch_args'"),
    ({'shared_dir': 'relative/dir'}, "key 'shared_dir'"),
    ({'setup': ['module load x\nrm -rf ~']}, "key 'setup'"),
])
def test_bad_config_names_the_key(slurm_env, project, mlflow_client, config, key):
    import mlproj
    from mlproj.errors import BackendError

    with pytest.raises(BackendError) as err:
        mlproj.run(str(project(MLPROJECT)), backend='slurm', backend_config=config)
    assert err.value.exit_code == 69
    assert key in str(err.value) and 'slurm backend config' in str(err.value)
    assert mlflow_client.get_run(run_id_of(mlflow_client)).info.status == 'FAILED'


def test_a_sweep_submits_one_job_per_point_under_one_parent(slurm, slurm_env, project, run_mlproj, mlflow_client):
    proj = project(MLPROJECT, {'data.txt': 'shipped\n'})
    res = run_mlproj('sweep', str(proj), '-b', 'slurm', '-c', json.dumps(CONFIG), '-P', 'word=a,b,c',
                     '--max-parallel', '2', timeout=240)
    assert res.returncode == 0, res.stderr
    assert {f'WORD={w}' for w in 'abc'} <= set(res.stdout.split())
    runs = mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()])
    parent = [r for r in runs if r.data.tags.get('mlproj.sweep') == 'true']
    assert len(parent) == 1 and parent[0].info.status == 'FINISHED'
    children = [r for r in runs if r.data.tags.get('mlflow.parentRunId') == parent[0].info.run_id]
    assert sorted(r.data.params['word'] for r in children) == ['a', 'b', 'c']
    assert {r.info.status for r in children} == {'FINISHED'}
    jobs = {r.data.tags['mlproj.slurm.job_id'] for r in children}
    assert len(jobs) == 3 and all(slurm.job_field(j, 'JobState') == 'COMPLETED' for j in jobs)


def test_ci_cancel_scancels_the_recorded_job_and_ends_the_run_killed(slurm, slurm_env, project, run_mlproj,
                                                                      mlflow_client, tracking_uri, tmp_path):
    from mlproj.ci import state

    res = run_mlproj('run', str(project(MLPROJECT)), '-e', 'slow', '-b', 'slurm', '--no-wait')
    assert res.returncode == 0, res.stderr
    run_id = res.stdout.strip().splitlines()[-1]
    job_id = mlflow_client.get_run(run_id).data.tags['mlproj.slurm.job_id']
    state_file = tmp_path / 'state.json'
    state.update(str(state_file), run_id=run_id, tracking_uri=tracking_uri, status='RUNNING', backend='slurm')
    got = run_mlproj('ci', 'cancel', '--state-file', str(state_file))
    assert got.returncode == 0, got.stderr
    assert f'cancelled Slurm job {job_id}; marked MLflow run {run_id} KILLED' in got.stderr
    assert mlflow_client.get_run(run_id).info.status == 'KILLED'
    deadline = time.monotonic() + 30
    while slurm.job_field(job_id, 'JobState') != 'CANCELLED' and time.monotonic() < deadline:
        time.sleep(0.2)
    assert slurm.job_field(job_id, 'JobState') == 'CANCELLED'
    again = run_mlproj('ci', 'cancel', '--state-file', str(state_file))
    assert again.returncode == 0 and f'run {run_id} already ended KILLED' in again.stderr
