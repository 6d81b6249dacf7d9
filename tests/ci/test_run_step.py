"""``mlproj ci run`` and the action's run step: outputs, summary, exit status, source default,
credentials kept from the project, and cancellation the way the GitHub runner delivers it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from mlproj.ci import gha
from mlproj.ci.runstep import resolve_source
from tests.helpers import MLPROJ
from tests.helpers.ci import REPO, clean_environ, gha_env, new_token, read_outputs
from tests.helpers.git import git

pytestmark = pytest.mark.slow  # runs the Action step end to end in subprocesses


def _mlruns(tmp_path: Path) -> str:
    return (tmp_path / 'mlruns').as_uri()


def _run(repo: Path, env: dict[str, str], *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([MLPROJ, 'ci', 'run', '--env-manager', 'local', *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _env(tmp_path: Path, repo: Path, sha: str, **kw) -> dict[str, str]:
    return {**clean_environ(), **gha_env(tmp_path / 'gha', repo, sha, **kw),
            'CI_FIXTURE_DIR': str(tmp_path), 'MLPROJ_KILL_GRACE': '3'}


def _get_run(tracking_uri: str, run_id: str):
    from mlproj.tracking import get_tracker

    return get_tracker(tracking_uri).get_run(run_id)


def test_success_writes_outputs_summary_and_state(tmp_path, project_repo):
    repo, sha = project_repo
    env = _env(tmp_path, repo, sha, merge_sha='e' * 40)
    state_file = tmp_path / 'state.json'
    got = _run(repo, env, '--tracking-uri', _mlruns(tmp_path), '--parameters', 'alpha=0.8\n# x\nnote=two words',
               '--state-file', str(state_file))
    assert got.returncode == 0, got.stderr
    out = read_outputs(tmp_path / 'gha' / 'output')
    assert out['status'] == 'FINISHED' and len(out['run-id']) == 32 and out['experiment-id'] == '0'
    assert out['commit'] == sha  # the PR head from the event, not GITHUB_SHA (the merge commit)
    assert out['run-url'] == ''  # a file store has no UI
    summary = (tmp_path / 'gha' / 'summary.md').read_text()
    assert summary.startswith('## ✅ mlproj run `main` FINISHED')
    assert '| `note` | `two words` |' in summary and '| `rmse` | `0.2` |' in summary
    assert f'https://github.com/octo/demo/commit/{sha}' in summary
    assert 'https://github.com/octo/demo/actions/runs/4242' in summary
    state = json.loads(state_file.read_text())
    assert state['status'] == 'FINISHED' and state['run_id'] == out['run-id'] and state['key'] == '.:main'
    record = _get_run(state['tracking_uri'], out['run-id'])
    assert record.status == 'FINISHED' and record.params['note'] == 'two words'
    assert '::notice title=mlproj source::running the workspace checkout' in got.stdout


def test_failed_run_fails_the_step_but_still_reports(tmp_path, project_repo):
    repo, sha = project_repo
    env = _env(tmp_path, repo, sha)
    got = _run(repo, env, '--tracking-uri', _mlruns(tmp_path), '-P', 'fail=3')
    assert got.returncode == 3
    out = read_outputs(tmp_path / 'gha' / 'output')
    assert out['status'] == 'FAILED' and out['run-id']
    assert '::error title=mlproj::mlproj run main FAILED' in got.stdout
    summary = (tmp_path / 'gha' / 'summary.md').read_text()
    assert summary.startswith('## ❌ mlproj run `main` FAILED') and '`rmse`' in summary
    assert _get_run(_mlruns(tmp_path), out['run-id']).status == 'FAILED'


def test_run_that_cannot_start_is_an_error_with_a_summary(tmp_path, project_repo):
    repo, sha = project_repo
    env = _env(tmp_path, repo, sha)
    got = _run(repo, env, '--tracking-uri', _mlruns(tmp_path), '-P', 'alpha=not-a-number')
    assert got.returncode == 66  # EXIT_PARAM
    out = read_outputs(tmp_path / 'gha' / 'output')
    assert out['status'] == 'ERROR' and out['run-id'] == ''
    summary = (tmp_path / 'gha' / 'summary.md').read_text()
    assert 'could not start' in summary and 'alpha' in summary
    assert 'Traceback' not in got.stderr


def test_pr_head_runs_not_the_merge_commit(tmp_path, project_repo):
    """Workspace checked out at a merge-like commit on top of the PR head: the head is what runs."""
    repo, head = project_repo
    train = repo / 'train.py'
    train.write_text(train.read_text().replace("log_metric('r2', 0.9)", "log_metric('r2', 0.1)"))
    git('commit', '-q', '-am', 'merge-like commit', cwd=repo)
    merge = git('rev-parse', 'HEAD', cwd=repo)
    env = _env(tmp_path, repo, head, merge_sha=merge)
    got = _run(repo, env, '--tracking-uri', _mlruns(tmp_path))
    assert got.returncode == 0, got.stderr
    out = read_outputs(tmp_path / 'gha' / 'output')
    assert out['commit'] == head
    record = _get_run(_mlruns(tmp_path), out['run-id'])
    assert record.metrics['r2'] == 0.9 and record.tags['mlflow.source.git.commit'] == head
    assert git('rev-parse', 'HEAD', cwd=repo) == merge and git('status', '--porcelain', cwd=repo) == ''


def test_default_source_resolution(tmp_path, project_repo):
    repo, head = project_repo

    def ctx(sha: str) -> gha.ActionsContext:
        return gha.ActionsContext(repository='octo/demo', workspace=str(repo), sha='f' * 40,
                                  event={'pull_request': {'number': 1, 'head': {'sha': sha}}})

    src = resolve_source('', None, ctx(head), str(repo))
    assert (src.uri, src.version) == (str(repo), None)
    src = resolve_source('#sub/dir', None, ctx(head), str(repo))
    assert (src.uri, src.version) == (f'{repo}#sub/dir', None)
    missing = 'a' * 40
    src = resolve_source('', None, ctx(missing), str(repo))
    assert (src.uri, src.version) == ('https://github.com/octo/demo.git', missing)
    assert 'not in the workspace' in src.note
    src = resolve_source('examples/x', 'v1', ctx(head), str(repo))
    assert (src.uri, src.version) == ('examples/x', 'v1')


def _run_step_script() -> tuple[str, dict[str, str]]:
    """The action's own run step: its bash script and its env: mapping."""
    action = yaml.safe_load((REPO / 'action.yml').read_text())
    [step] = [s for s in action['runs']['steps'] if s.get('id') == 'run']
    return step['run'], step['env']


def _step_env(tmp_path: Path, repo: Path, sha: str, state_dir: Path, **inputs: str) -> dict[str, str]:
    _, mapping = _run_step_script()
    values = {'MLPROJ': MLPROJ, 'MLPROJ_STATE_DIR': str(state_dir), 'MLPROJ_ENTRY_POINT': 'main',
              'MLPROJ_BACKEND': 'local', 'MLPROJ_ENV_MANAGER': 'local', **inputs}
    env = _env(tmp_path, repo, sha)
    for name in mapping:  # every variable the step declares exists (empty = input not given)
        env[name] = values.get(name, '')
    return env


def test_project_never_sees_github_credentials(tmp_path, project_repo):
    repo, sha = project_repo
    state_dir = tmp_path / 'state'
    state_dir.mkdir()
    script, _ = _run_step_script()
    secrets = {'GITHUB_TOKEN': new_token(), 'GH_TOKEN': new_token(), 'INPUT_GITHUB-TOKEN': new_token()}
    env = {**_step_env(tmp_path, repo, sha, state_dir, MLPROJ_TRACKING_URI=_mlruns(tmp_path),
                       MLPROJ_DATABRICKS_TOKEN='dapi-input-token'), **secrets, 'MY_SETTING': 'kept'}
    got = subprocess.run(['bash', '--noprofile', '--norc', '-eo', 'pipefail', '-c', script], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    seen = json.loads((tmp_path / 'project-env.json').read_text())
    dumped = json.dumps(seen)
    for value in secrets.values():
        assert value not in dumped
    assert not [k for k in seen if k.startswith('INPUT_') or k in ('GITHUB_TOKEN', 'GH_TOKEN')]
    assert seen['MY_SETTING'] == 'kept' and seen['MLFLOW_RUN_ID']
    # the input is for Databricks tracking or the Databricks backend (mlproj's own process): a run
    # logging to a file store does not get it (mlproj.childenv)
    assert 'DATABRICKS_TOKEN' not in seen and 'dapi-input-token' not in dumped
    assert 'MLPROJ_DATABRICKS_TOKEN' not in seen
    assert 'GITHUB_TOKEN' in got.stderr and secrets['GITHUB_TOKEN'] not in got.stderr + got.stdout


@pytest.mark.parametrize('signals', [('SIGINT',), ('SIGINT', 'SIGTERM')])
def test_cancellation_as_the_runner_does_it(tmp_path, project_repo, signals):
    """GitHub signals only the step's entry process (bash running the script): SIGINT, then SIGTERM
    7.5 s later.  The step execs mlproj, so mlproj receives them, kills the project's process
    group, and records KILLED before the runner would kill the tree."""
    repo, sha = project_repo
    state_dir = tmp_path / 'state'
    state_dir.mkdir()
    script, _ = _run_step_script()
    env = _step_env(tmp_path, repo, sha, state_dir, MLPROJ_TRACKING_URI=_mlruns(tmp_path),
                    MLPROJ_PARAMETERS='sleep=120')
    env['MLPROJ_KILL_GRACE'] = ''  # the step's own default (5 s) applies
    proc = subprocess.Popen(['bash', '--noprofile', '--norc', '-eo', 'pipefail', '-c', script], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        marker = tmp_path / 'started'
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, 'the project never started'
            time.sleep(0.1)
        project_pid = int(marker.read_text())
        for i, name in enumerate(signals):
            os.kill(proc.pid, getattr(signal, name))  # the entry process only, not its group
            if i + 1 < len(signals):
                time.sleep(0.3)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + signal.SIGINT if len(signals) == 1 else proc.returncode in (130, 137)
    assert 'SIGINT received, cancelling run' in err
    with pytest.raises(ProcessLookupError):
        os.kill(project_pid, 0)
    outputs = read_outputs(tmp_path / 'gha' / 'output')
    assert outputs['status'] == 'KILLED'
    assert _get_run(_mlruns(tmp_path), outputs['run-id']).status == 'KILLED'
    state = json.loads((state_dir / 'state.json').read_text())
    assert state['status'] == 'KILLED'
