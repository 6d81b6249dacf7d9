"""Plain helpers of the GitHub Action / ``mlproj ci`` tests (tests/ci/conftest.py holds their fixtures):
paths, a committed fixture project, runner-like environments, $GITHUB_OUTPUT parsing."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from pathlib import Path

from tests.helpers import REPO
from tests.helpers.git import commit_all, git

HERE = REPO / 'tests' / 'ci'
FIXTURE = HERE / 'fixtures' / 'project'
BIN = Path(sys.executable).parent
OWNER_REPO = 'octo/demo'


def new_token() -> str:
    return 'ghs_' + secrets.token_hex(18)


def make_project_repo(base: Path) -> tuple[Path, str]:
    """A committed Git repo with the fixture project at the root; returns (path, HEAD sha)."""
    repo = base / 'repo'
    shutil.copytree(FIXTURE, repo)
    (repo / '.gitignore').write_text('mlruns/\nmlflow.db\n')
    git('init', '-q', '-b', 'main', cwd=repo)
    git('remote', 'add', 'origin', f'https://github.com/{OWNER_REPO}.git', cwd=repo)
    return repo, commit_all(repo, 'fixture')


def pull_request_event(path: Path, head_sha: str, number: int = 7, merge_sha: str | None = None) -> Path:
    path.write_text(json.dumps({
        'action': 'synchronize', 'number': number,
        'pull_request': {'number': number, 'head': {'sha': head_sha, 'ref': 'feature'},
                         'base': {'sha': merge_sha or head_sha, 'ref': 'main'}},
        'repository': {'full_name': OWNER_REPO},
    }))
    return path


def clean_environ() -> dict[str, str]:
    """os.environ without anything a runner (or this machine) set for GitHub."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('GITHUB_', 'RUNNER_', 'ACTIONS_', 'INPUT_')) and k not in ('GH_TOKEN', 'CI')}
    env['PATH'] = f'{BIN}{os.pathsep}{env.get("PATH", "")}'
    env['MLPROJ_GITHUB_WRITE_INTERVAL'] = '0'
    return env


def gha_env(files: Path, workspace: Path, head_sha: str, *, api_url: str = '', event: str = 'pull_request',
            merge_sha: str | None = None, actions: bool = True) -> dict[str, str]:
    """GITHUB_* as a runner sets them for a pull_request event (files go to ``files``)."""
    files.mkdir(parents=True, exist_ok=True)
    (files / 'output').touch()
    (files / 'summary.md').touch()
    values = {
        'GITHUB_REPOSITORY': OWNER_REPO, 'GITHUB_SERVER_URL': 'https://github.com',
        'GITHUB_API_URL': api_url or 'http://127.0.0.1:9', 'GITHUB_EVENT_NAME': event,
        'GITHUB_SHA': merge_sha or head_sha, 'GITHUB_RUN_ID': '4242', 'GITHUB_RUN_ATTEMPT': '1',
        'GITHUB_WORKSPACE': str(workspace), 'RUNNER_TEMP': str(files),
        'GITHUB_EVENT_PATH': str(pull_request_event(files / 'event.json', head_sha, merge_sha=merge_sha)),
        'GITHUB_OUTPUT': str(files / 'output'), 'GITHUB_STEP_SUMMARY': str(files / 'summary.md'),
    }
    if actions:
        values['GITHUB_ACTIONS'] = 'true'
    return values


def read_outputs(path: Path) -> dict[str, str]:
    """Parse a $GITHUB_OUTPUT file (name=value and heredoc entries) the way the runner does."""
    out: dict[str, str] = {}
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if '<<' in line and ('=' not in line or line.index('<<') < line.index('=')):
            name, delimiter = line.split('<<', 1)
            j = lines.index(delimiter, i + 1)
            out[name] = '\n'.join(lines[i + 1:j])
            i = j + 1
            continue
        name, _, value = line.partition('=')
        out[name] = value
        i += 1
    return out
