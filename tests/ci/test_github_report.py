"""``mlproj ci report`` through PyGithub against the strict fake GitHub API on loopback.

One real run (``mlproj ci run`` on the fixture project, tracked in an MLflow file store) is made
per module; every test reports it (or lint findings) and checks what reached the API.
"""
from __future__ import annotations

import json
import logging
import os
import re
import subprocess

import pytest

from mlproj.ci.markdown import marker
from tests.ci.fake_github import FakeGitHub
from tests.helpers import MLPROJ
from tests.helpers.ci import OWNER_REPO, clean_environ, gha_env, make_project_repo, new_token

KEY = '.:main'
CONTEXT = f'mlproj ({KEY})'


@pytest.fixture(scope='module')
def recorded(tmp_path_factory):
    """A finished run of the fixture project: (repo, head sha, state file, merge sha)."""
    base = tmp_path_factory.mktemp('report')
    repo, sha = make_project_repo(base)
    merge = 'f' * 40  # GITHUB_SHA on pull_request events is the merge commit: never report on it
    state_file = base / 'state.json'
    env = {**clean_environ(), **gha_env(base / 'gha', repo, sha, merge_sha=merge),
           'MLPROJ_CACHE_DIR': str(base / 'cache'), 'MLPROJ_KILL_GRACE': '3'}
    got = subprocess.run([MLPROJ, 'ci', 'run', '--env-manager', 'local', '--tracking-uri', (base / 'mlruns').as_uri(),
                          '-P', 'alpha=0.4', '--state-file', str(state_file)],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    return repo, sha, state_file, merge


@pytest.fixture
def report(recorded, fake_github, token, tmp_path, monkeypatch, capfd):
    """``mlproj ci report ARGS`` as the action's report step runs it (in-process through the CLI
    entry point, with the step's environment; ``subprocess=True`` for a separate process)."""
    repo, sha, state_file, merge = recorded
    copy = tmp_path / 'state.json'
    copy.write_text(state_file.read_text())

    def call(*args: str, env_extra: dict[str, str] | None = None, with_token: bool = True,
             lint_lines: list[str] | None = None, refused: int = 0,
             subprocess_: bool = False) -> subprocess.CompletedProcess:
        env = {**clean_environ(), **gha_env(tmp_path / 'gha', repo, sha, api_url=fake_github.url, merge_sha=merge),
               **(env_extra or {})}
        if with_token:
            env['GITHUB_TOKEN'] = token
        argv = ['ci', 'report', '--state-file', str(copy), *args]
        if lint_lines is not None:
            lint = tmp_path / 'lint.txt'
            lint.write_text('\n'.join(lint_lines) + '\n')
            argv += ['--lint-file', str(lint)]
        if subprocess_:
            got = subprocess.run([MLPROJ, *argv], cwd=repo, env=env, capture_output=True, text=True, timeout=60)
        else:
            from mlproj.cli import main

            with monkeypatch.context() as m:
                for k in list(os.environ):
                    m.delenv(k)
                for k, v in env.items():
                    m.setenv(k, v)
                m.chdir(repo)
                capfd.readouterr()
                try:
                    code = main(argv)
                except SystemExit as e:
                    code = int(e.code or 0)
                out, err = capfd.readouterr()
            got = subprocess.CompletedProcess(argv, code, out, err)
        assert token not in got.stdout + got.stderr
        # no unknown endpoint or field ever; only the refusals the test arranged
        rejected = fake_github.state.rejected
        assert len(rejected) == refused and all(r[2] in (401, 403) for r in rejected), rejected
        rejected.clear()
        return got

    call.state_file = copy
    return call


def _bot_comments(fake: FakeGitHub) -> list[dict]:
    return [c for c in fake.state.comments.values() if c['user'] == 'github-actions[bot]']


def test_sticky_comment_created_once_then_updated(report, fake_github, recorded):
    fake_github.add_comment(7, 'an unrelated human comment')
    first = report('--comment', '--check', 'none', subprocess_=True)
    assert first.returncode == 0, first.stderr
    assert 'PR comment created' in first.stderr
    second = report('--comment', '--check', 'none')
    assert 'PR comment updated' in second.stderr
    ours = _bot_comments(fake_github)
    assert len(ours) == 1
    body = ours[0]['body']
    assert body.startswith(marker(KEY)) and 'FINISHED' in body and '`alpha` | `0.4`' in body
    assert '`rmse`' in body and '`0.1`' in body
    assert recorded[1][:12] in body  # the PR head commit, not the merge commit
    writes = [(m, p) for m, p, _ in fake_github.writes()]
    assert writes == [('POST', f'/repos/{OWNER_REPO}/issues/7/comments'),
                      ('PATCH', f'/repos/{OWNER_REPO}/issues/comments/{ours[0]["id"]}')]
    # another entry point of the same project gets its own comment
    report('--comment', '--check', 'none', '--key', '.:evaluate')
    assert len(_bot_comments(fake_github)) == 2


def test_sticky_comment_found_on_a_later_page(report, fake_github):
    for i in range(130):
        fake_github.add_comment(7, f'noise {i}', user='github-actions[bot]')
    report('--comment', '--check', 'none')
    before = len(fake_github.state.comments)
    report('--comment', '--check', 'none')
    assert len(fake_github.state.comments) == before  # found past the first page of 100, edited
    pages = [p for m, p, _ in fake_github.state.requests if m == 'GET']
    assert len(pages) >= 3


def test_foreign_comment_carrying_the_marker_is_left_alone(report, fake_github):
    forged = fake_github.add_comment(7, marker(KEY) + '\nnot from the bot', user='mallory')
    got = report('--comment', '--check', 'none', refused=1)  # editing mallory's comment is refused
    assert got.returncode == 0 and 'PR comment created' in got.stderr
    report('--comment', '--check', 'none')  # from now on the bot's own comment is the sticky one
    assert fake_github.state.comments[forged]['body'].endswith('not from the bot')
    assert len(_bot_comments(fake_github)) == 1


def test_commit_status_on_the_pr_head(report, fake_github, recorded):
    got = report('--no-comment', '--check', 'status')
    assert got.returncode == 0, got.stderr
    [status] = fake_github.state.statuses
    assert status['sha'] == recorded[1] != recorded[3]
    assert status['state'] == 'success' and status['context'] == CONTEXT
    assert status['description'].startswith('main: FINISHED') and len(status['description']) <= 140
    assert status['target_url'] == 'https://github.com/octo/demo/actions/runs/4242'  # no MLflow UI for files


def test_pending_status_before_the_run(report, fake_github):
    report('--start', '--check', 'status')
    assert [s['state'] for s in fake_github.state.statuses] == ['pending']


def _many_warnings(tmp_path, count: int) -> list[str]:
    project = tmp_path / 'lintme'
    project.mkdir()
    params = '\n'.join(f'      p{i}: {{type: float, default: 1}}' for i in range(count))
    (project / 'MLproject').write_text(f'name: x\nentry_points:\n  main:\n    parameters:\n{params}\n'
                                       f'    command: "python x.py"\n')
    got = subprocess.run([MLPROJ, 'lint', '--format', 'github', 'lintme'], cwd=tmp_path, capture_output=True,
                         text=True)
    lines = [line for line in got.stdout.splitlines() if line.startswith('::')]
    assert len(lines) >= count
    return lines


def test_check_run_with_annotations_in_batches_of_50(report, fake_github, recorded, tmp_path):
    lines = _many_warnings(tmp_path, 120)
    started = report('--start', '--check', 'check-run')
    assert started.returncode == 0, started.stderr
    check_id = json.loads(report.state_file.read_text())['check_run_id']
    assert fake_github.state.check_runs[check_id]['status'] == 'in_progress'
    done = report('--comment', '--check', 'check-run', lint_lines=lines)
    assert done.returncode == 0, done.stderr
    run = fake_github.state.check_runs[check_id]
    assert len(fake_github.state.check_runs) == 1  # the started check run was completed, not a new one
    assert run['status'] == 'completed' and run['conclusion'] == 'success'  # warnings do not fail
    assert run['head_sha'] == recorded[1]
    sent = [b['output'].get('annotations', []) for m, p, b in fake_github.state.requests
            if p.endswith('/check-runs' if m == 'POST' else f'/check-runs/{check_id}') and b and 'output' in b]
    assert [len(s) for s in sent] == [50, 50, len(lines) - 100]
    stored = fake_github.state.annotations[check_id]
    assert len(stored) == len(lines)
    assert all(a['path'] == 'lintme/MLproject' and a['annotation_level'] == 'warning' for a in stored)
    assert 'Lint:** ' in run['output']['summary'] and 'warnings' in run['output']['summary']
    [comment] = _bot_comments(fake_github)
    assert 'more finding(s) in the workflow log' in comment['body']


def test_check_run_created_completed_when_not_started(report, fake_github):
    got = report('--no-comment', '--check', 'check-run')
    assert got.returncode == 0, got.stderr
    [run] = fake_github.state.check_runs.values()
    assert run['name'] == CONTEXT and run['status'] == 'completed' and run['conclusion'] == 'success'
    assert re.match(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$', run['completed_at'])


def test_read_only_token_warns_instead_of_failing(report, fake_github):
    fake_github.state.deny.update({'create_comment', 'create_status'})
    got = report('--comment', '--check', 'status', refused=2)
    assert got.returncode == 0
    warnings = [line for line in got.stdout.splitlines() if line.startswith('::warning')]
    assert len(warnings) == 2 and all('HTTP 403' in w and 'read-only token' in w for w in warnings)
    strict = report('--comment', '--check', 'status', '--strict', refused=2, subprocess_=True)
    assert strict.returncode == 1


def test_missing_token_is_a_warning(report, fake_github):
    got = report('--comment', with_token=False)
    assert got.returncode == 0 and 'no GitHub token' in got.stdout
    assert fake_github.state.requests == []


def test_no_token_in_any_logged_line(recorded, fake_github, token, tmp_path, monkeypatch, caplog, capfd):
    """In-process, with every logger (PyGithub's request log included) at DEBUG."""
    from mlproj.ci.reporting import ReportOptions, report_run

    repo, sha, state_file, merge = recorded
    for k, v in {**clean_environ(), **gha_env(tmp_path / 'gha', repo, sha, api_url=fake_github.url,
                                              merge_sha=merge)}.items():
        monkeypatch.setenv(k, v)
    copy = tmp_path / 'state.json'
    copy.write_text(state_file.read_text())
    caplog.set_level(logging.DEBUG)
    opts = ReportOptions(state_file=str(copy), comment=True, check='check-run', token=token, start=False)
    assert report_run(opts) == 0
    fake_github.state.deny.add('create_status')
    assert report_run(ReportOptions(state_file=str(copy), check='status', token=token)) == 0
    out, err = capfd.readouterr()
    logged = [r.getMessage() for r in caplog.records]
    assert any('/check-runs' in line for line in logged), 'PyGithub debug logging was not captured'
    for line in logged + out.splitlines() + err.splitlines():
        assert token not in line
    assert len(fake_github.writes()) == 3  # comment, check run, (refused) status
    # the token did reach the API, in the header only
    assert fake_github.state.token == token


def test_a_different_token_is_refused(report, fake_github, token):
    got = report('--comment', env_extra={'GITHUB_TOKEN': new_token()}, with_token=False, refused=2)
    assert got.returncode == 0 and 'HTTP 401' in got.stdout


def test_lint_only_report(fake_github, token, tmp_path, monkeypatch, capfd):
    """`lint: only`: no run and no state file; the lint findings alone make the status."""
    from mlproj.cli import main

    for k, v in {**clean_environ(), **gha_env(tmp_path / 'gha', tmp_path, 'c' * 40, api_url=fake_github.url),
                 'GITHUB_TOKEN': token}.items():
        monkeypatch.setenv(k, v)
    lint = tmp_path / 'lint.txt'
    lint.write_text('::error file=p/MLproject,line=5,col=7,title=MLP005 unknown-param-type::bad type\n'
                    '::warning file=p/MLproject,line=6,col=7,title=MLP016 unused-param::unused\n')
    code = main(['ci', 'report', '--state-file', str(tmp_path / 'absent.json'), '--lint-file', str(lint),
                 '--uri', '#p', '--entry-point', 'main', '--comment', '--check', 'status'])
    assert code == 0
    [status] = fake_github.state.statuses
    assert (status['state'], status['description'], status['context']) == \
        ('failure', 'lint: 1 error, 1 warning', 'mlproj (#p:main)')
    [comment] = fake_github.state.comments.values()
    assert comment['body'].startswith(marker('#p:main') + '\n### ❌ mlproj lint: 1 error, 1 warning')
    assert 'p/MLproject:5:7: error: MLP005 unknown-param-type bad type' in comment['body']
    assert token not in ''.join(capfd.readouterr()) and fake_github.state.rejected == []
