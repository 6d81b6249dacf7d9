"""``mlproj run -b kubernetes`` through the official client against a strict fake API server.

What is NOT exercised here (no cluster, registry or image can run on these machines): a real
kube-apiserver, scheduling, image pulls, and a real ``docker push`` (the build/push sequence is
checked with a recording engine executable; the image build itself is tested in tests/envs).
"""
from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from tests.helpers import interrupt_on_line, mlproj_argv

MLPROJECT = '''
name: kubetest
entry_points:
  main:
    parameters:
      word: {type: string, default: "x"}
    command: >-
      python3 -c "import os, sys; print('WORD=' + sys.argv[1]); print('RUN=' + os.environ['MLFLOW_RUN_ID']);
      print('TRACKING=' + os.environ['MLFLOW_TRACKING_URI']); print('TEMPLATE=' + os.environ['FROM_TEMPLATE'])"
      {word} && echo "$((6*7)) via sh"
  fail:
    command: "echo about to fail; exit 3"
  slow:
    command: "echo started; sleep 120; echo never"
'''


def config(kube, **extra) -> dict:
    return {'kube-job-template-path': str(kube.template), 'build-image': False, 'image': 'registry.local/p:1',
            'poll-interval': 0.2, **extra}


def run_id_of(mlflow_client) -> str:
    runs = mlflow_client.search_runs(['0'], filter_string="tags.`mlflow.project.backend` = 'kubernetes'")
    assert len(runs) == 1
    return runs[0].info.run_id


def the_job(kube) -> dict:
    assert len(kube.jobs) == 1
    return next(iter(kube.jobs.values()))


def test_success_renders_the_template_and_streams_logs(kube, project, run_mlproj, mlflow_client, monkeypatch):
    monkeypatch.setenv('KUBE_MLFLOW_TRACKING_URI', 'http://mlflow.mlflow.svc:5000')
    proj = project(MLPROJECT)
    res = run_mlproj('run', str(proj), '-b', 'kubernetes', '-c', json.dumps(config(kube, **{'kube-context': 'fake'})),
                     '-P', 'word=a b"c\'d $x')
    assert res.returncode == 0, res.stderr
    run_id = run_id_of(mlflow_client)
    assert 'WORD=a b"c\'d $x' in res.stdout
    assert f'RUN={run_id}' in res.stdout
    assert 'TRACKING=http://mlflow.mlflow.svc:5000' in res.stdout   # KUBE_MLFLOW_TRACKING_URI, as MLflow
    assert 'TEMPLATE=kept' in res.stdout and '42 via sh' in res.stdout
    job = the_job(kube)
    container = job['spec']['template']['spec']['containers'][0]
    assert job['metadata']['namespace'] == 'mlflow'
    assert job['metadata']['name'].startswith('kubetest-')
    assert container['name'] == 'kubetest' and container['image'] == 'registry.local/p:1'
    assert container['command'][:2] == ['sh', '-c']
    assert container['resources'] == {'limits': {'memory': '512Mi'}, 'requests': {'memory': '256Mi'}}
    names = [e['name'] for e in container['env']]
    assert names[0] == 'FROM_TEMPLATE' and 'MLFLOW_RUN_ID' in names   # the placeholder string is dropped
    assert job['spec']['template']['metadata']['labels']['mlproj/run-id'] == run_id
    run = mlflow_client.get_run(run_id)
    assert run.info.status == 'FINISHED'
    assert run.data.tags['mlproj.kubernetes.job_name'] == job['metadata']['name']
    assert run.data.tags['mlproj.kubernetes.namespace'] == 'mlflow'
    assert kube.unknown == [] and kube.rejected == []
    assert kube.token not in res.stdout + res.stderr + json.dumps(run.data.tags)


def test_failure_exit_code_comes_from_the_pod(kube, project, run_mlproj, mlflow_client):
    res = run_mlproj('run', str(project(MLPROJECT)), '-e', 'fail', '-b', 'kubernetes', '-c', json.dumps(config(kube)))
    assert res.returncode == 3, res.stderr
    assert 'about to fail' in res.stdout
    assert mlflow_client.get_run(run_id_of(mlflow_client)).info.status == 'FAILED'
    assert 'BackoffLimitExceeded' in res.stderr
    assert kube.unknown == [] and kube.rejected == []


def test_ctrl_c_deletes_the_job_and_records_killed(kube, project, tracking_uri, mlflow_client, tmp_path):
    argv = mlproj_argv('run', str(project(MLPROJECT)), '-e', 'slow', '-b', 'kubernetes', '-c', json.dumps(config(kube)))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    out, err = interrupt_on_line(proc, 'started')
    assert proc.returncode == 130, err
    assert mlflow_client.get_run(run_id_of(mlflow_client)).info.status == 'KILLED'
    job = the_job(kube)
    assert job['_deleted']
    assert ('DELETE', f"/apis/batch/v1/namespaces/mlflow/jobs/{job['metadata']['name']}") in kube.requests
    assert kube.pods == {}  # Background propagation: the pod went with the Job


def test_no_wait_then_wait_via_api(kube, project, tracking_uri, mlflow_client):
    import mlproj

    submitted = mlproj.run(str(project(MLPROJECT)), 'fail', backend='kubernetes', synchronous=False,
                           backend_config=config(kube))
    assert submitted.wait() is False
    assert submitted.get_status() == 'FAILED' and submitted.exit_code == 3
    assert mlflow_client.get_run(submitted.run_id).info.status == 'FAILED'


def test_unreachable_api_is_one_line_and_run_failed(kube, project, run_mlproj, mlflow_client):
    res = run_mlproj('run', str(project(MLPROJECT)), '-b', 'kubernetes',
                     '-c', json.dumps(config(kube, **{'kube-context': 'dead'})))
    assert res.returncode == 69, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith('mlproj: error:')]
    assert len(errors) == 1 and 'cannot reach the Kubernetes API' in errors[0], res.stderr
    assert 'Traceback' not in res.stderr
    assert mlflow_client.get_run(run_id_of(mlflow_client)).info.status == 'FAILED'


@pytest.mark.parametrize('replace, expected', [
    # caught by the client's own schema validation before anything is sent
    ('      restartPolicy: Never\n      restartPolicyy: Always',
     'the rendered Job does not match the batch/v1 schema: spec.template.spec.restartPolicyy: Extra inputs'),
    # accepted by the client, refused by the API server
    ('      restartPolicy: Always',
     'the API server refused the Job: HTTP 422 spec.template.spec.restartPolicy: Unsupported value'),
])
def test_template_rejections_are_one_line(kube, project, mlflow_client, tmp_path, replace, expected):
    import mlproj
    from mlproj.errors import BackendError

    bad = tmp_path / 'bad.yaml'
    bad.write_text(kube.template.read_text().replace('      restartPolicy: Never', replace))
    with pytest.raises(BackendError) as err:
        mlproj.run(str(project(MLPROJECT)), backend='kubernetes',
                   backend_config=config(kube, **{'kube-job-template-path': str(bad)}))
    assert expected in str(err.value) and '\n' not in str(err.value)
    assert mlflow_client.get_run(run_id_of(mlflow_client)).info.status == 'FAILED'


@pytest.mark.parametrize('change, expected', [
    ({'kube-job-template-path': None}, "missing key 'kube-job-template-path'"),
    ({'kube-contxt': 'fake'}, "unknown key 'kube-contxt' (did you mean 'kube-context'?)"),
    ({'kube-job-template-path': '/nonexistent/job.yaml'}, "key 'kube-job-template-path': could not find"),
    ({'kube-context': 'nope'}, "key 'kube-context': cannot use context 'nope'"),
    ({'build-image': True, 'image': None}, "missing key 'repository-uri'"),
    ({'build-image': 'no'}, "key 'build-image'"),
])
def test_bad_config_names_the_key(kube, project, mlflow_client, change, expected):
    import mlproj
    from mlproj.errors import BackendError

    cfg = {k: v for k, v in {**config(kube), **change}.items() if v is not None}
    with pytest.raises(BackendError) as err:
        mlproj.run(str(project(MLPROJECT)), backend='kubernetes', backend_config=cfg)
    assert expected in str(err.value) and err.value.exit_code == 69
    assert mlflow_client.get_run(run_id_of(mlflow_client)).info.status == 'FAILED'
    assert kube.jobs == {}


def test_invalid_template_yaml_names_file_line_col(kube, project, mlflow_client, tmp_path):
    import mlproj
    from mlproj.errors import BackendError

    bad = tmp_path / 'broken.yaml'
    bad.write_text('apiVersion: batch/v1\nkind: Job\nspec: [unclosed\n')
    with pytest.raises(BackendError, match=f'the Job template is not valid YAML \\({bad}:4:1\\)'):
        mlproj.run(str(project(MLPROJECT)), backend='kubernetes',
                   backend_config=config(kube, **{'kube-job-template-path': str(bad)}))


RECORDING_ENGINE = r'''#!/bin/sh
# A recording stand-in for the docker CLI: logs its argv, answers like docker would.
echo "$*" >> "$ENGINE_LOG"
case "$1 $2" in
  "image inspect")
    for last; do :; done
    case "$last" in
      python:3.11-slim) echo "sha256:base0000000000000000000000000000000000000000000000000000000000" ;;
      mlproj-kubetest:*)  # exists once built
        grep -q '^build ' "$ENGINE_LOG" || exit 1
        echo "sha256:built$(printf '0%.0s' $(seq 59))" ;;
      registry.local/team/kubetest:*)
        echo "[\"registry.local/team/kubetest@sha256:feedface$(printf '0%.0s' $(seq 56))\"]" ;;
      *) exit 1 ;;
    esac ;;
  *) exit 0 ;;
esac
'''


def test_build_tag_push_and_digest_reference(kube, project, run_mlproj, mlflow_client, tmp_path, monkeypatch):
    engine = tmp_path / 'engine'
    engine.write_text(RECORDING_ENGINE)
    engine.chmod(engine.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / 'engine.log'
    monkeypatch.setenv('MLPROJ_CONTAINER_ENGINE', str(engine))
    monkeypatch.setenv('ENGINE_LOG', str(log))
    proj = project(MLPROJECT.replace('name: kubetest', 'name: kubetest\ndocker_env:\n  image: python:3.11-slim'))
    cfg = {'kube-job-template-path': str(kube.template), 'repository-uri': 'registry.local/team/kubetest',
           'poll-interval': 0.2}
    res = run_mlproj('run', str(proj), '-b', 'kubernetes', '-c', json.dumps(cfg))
    assert res.returncode == 0, res.stderr
    calls = log.read_text().splitlines()
    build = next(c for c in calls if c.startswith('build '))
    local_tag = build.split('--tag ')[1].split()[0]
    tag_call = next(c for c in calls if c.startswith('tag '))
    remote = tag_call.split()[2]
    assert tag_call == f'tag {local_tag} {remote}' and remote.startswith('registry.local/team/kubetest:')
    assert f'push {remote}' in calls
    assert calls.index(f'push {remote}') > calls.index(tag_call) > calls.index(build)
    image = the_job(kube)['spec']['template']['spec']['containers'][0]['image']
    assert image == f'{remote}@sha256:feedface' + '0' * 56
    tags = mlflow_client.get_run(run_id_of(mlflow_client)).data.tags
    assert tags['mlflow.docker.image.uri'] == remote
    assert tags['mlflow.docker.image.id'] == 'sha256:feedface' + '0' * 56
    assert tags['mlflow.project.env'] == 'docker'
    assert os.environ['ENGINE_LOG']


def test_ci_cancel_deletes_the_recorded_job_and_ends_the_run_killed(kube, project, run_mlproj, mlflow_client,
                                                                    tracking_uri, tmp_path):
    from mlproj.ci import state

    res = run_mlproj('run', str(project(MLPROJECT)), '-e', 'slow', '-b', 'kubernetes', '--no-wait',
                     '-c', json.dumps(config(kube, **{'kube-context': 'fake'})))
    assert res.returncode == 0, res.stderr
    run_id = res.stdout.strip().splitlines()[-1]
    tags = mlflow_client.get_run(run_id).data.tags
    assert tags['mlproj.kubernetes.context'] == 'fake'
    state_file = tmp_path / 'state.json'
    state.update(str(state_file), run_id=run_id, tracking_uri=tracking_uri, status='RUNNING')
    got = run_mlproj('ci', 'cancel', '--state-file', str(state_file))
    assert got.returncode == 0, got.stderr
    name = tags['mlproj.kubernetes.job_name']
    assert f"cancelled Kubernetes Job 'mlflow/{name}'; marked MLflow run {run_id} KILLED" in got.stderr
    assert the_job(kube)['_deleted']
    assert ('DELETE', f'/apis/batch/v1/namespaces/mlflow/jobs/{name}') in kube.requests
    assert mlflow_client.get_run(run_id).info.status == 'KILLED'
