"""The Actions runtime helpers: event payloads, file commands, masking, credential scrubbing."""
from __future__ import annotations

import io
import json

import pytest

from mlproj.ci import gha
from mlproj.ci.runstep import parse_parameters
from mlproj.errors import BadArgumentError
from tests.helpers.ci import read_outputs


def _ctx(tmp_path, event_name: str, payload: dict, sha: str = 'm' * 40, **extra: str) -> gha.ActionsContext:
    path = tmp_path / 'event.json'
    path.write_text(json.dumps(payload))
    env = {'GITHUB_EVENT_NAME': event_name, 'GITHUB_EVENT_PATH': str(path), 'GITHUB_SHA': sha,
           'GITHUB_REPOSITORY': 'o/r', 'GITHUB_RUN_ID': '9', 'GITHUB_SERVER_URL': 'https://ghe.example/',
           **extra}
    return gha.ActionsContext.from_env(env)


def test_pull_request_head_not_merge_commit(tmp_path):
    ctx = _ctx(tmp_path, 'pull_request', {'pull_request': {'number': 12, 'head': {'sha': 'h' * 40}}})
    assert ctx.sha == 'm' * 40
    assert ctx.head_sha == 'h' * 40
    assert ctx.pr_number == 12
    assert ctx.run_url == 'https://ghe.example/o/r/actions/runs/9'


def test_workflow_run_and_issue_comment_and_push(tmp_path):
    pulls = [{'number': 3, 'head': {'sha': 'w' * 40}}]
    run = _ctx(tmp_path, 'workflow_run', {'workflow_run': {'head_sha': 'w' * 40, 'pull_requests': pulls}})
    assert (run.head_sha, run.pr_number, run.cache_allowed) == ('w' * 40, 3, False)
    comment = _ctx(tmp_path, 'issue_comment', {'issue': {'number': 5, 'pull_request': {'url': 'x'}}})
    assert comment.pr_number == 5
    push = _ctx(tmp_path, 'push', {'head_commit': {'id': 'p'}}, sha='p' * 40)
    assert (push.head_sha, push.pr_number, push.cache_allowed) == ('p' * 40, None, True)


@pytest.mark.parametrize('event,ref_type,allowed', [
    ('pull_request', 'branch', True), ('push', 'branch', True), ('push', 'tag', False),
    ('pull_request_target', 'branch', False), ('release', 'tag', False), ('workflow_run', 'branch', False),
])
def test_cache_allowed(tmp_path, event, ref_type, allowed):
    assert _ctx(tmp_path, event, {}, GITHUB_REF_TYPE=ref_type).cache_allowed is allowed


def test_outputs_single_and_multiline_with_random_delimiter(tmp_path):
    path = tmp_path / 'out'
    nasty = 'line1\nghadelimiter_x\nEOF\nname=value'
    gha.write_outputs(str(path), {'run-id': 'abc', 'text': nasty, 'empty': ''})
    gha.write_outputs(str(path), {'text2': nasty})
    text = path.read_text()
    delimiters = [line.split('<<')[1] for line in text.splitlines() if '<<' in line]
    assert len(delimiters) == 2 and delimiters[0] != delimiters[1]
    assert all(d.startswith('ghadelimiter_') and len(d) > 30 for d in delimiters)
    assert read_outputs(path) == {'run-id': 'abc', 'text': nasty, 'empty': '', 'text2': nasty}
    with pytest.raises(BadArgumentError):
        gha.format_output('bad name', 'x')


def test_summary_is_capped(tmp_path):
    path = tmp_path / 'summary.md'
    gha.append_summary(str(path), '| row |\n' * 200_000, cap=1000)
    data = path.read_bytes()
    assert len(data) <= 1001 and data.rstrip().endswith(b'*(truncated)*')


def test_mask_only_inside_actions():
    out = io.StringIO()
    gha.mask('s3cret\nsecond-line', out=out, environ={})
    assert out.getvalue() == ''  # outside Actions a mask command would print the secret itself
    gha.mask('s3cret\nsecond-line', out=out, environ={'GITHUB_ACTIONS': 'true'})
    assert out.getvalue() == '::add-mask::s3cret\n::add-mask::second-line\n'


def test_workflow_command_escaping():
    line = gha.command('warning', 'a%b\nc', title='x: y, z', file='')
    assert line == '::warning title=x%3A y%2C z::a%25b%0Ac'


def test_scrub_credentials_removes_tokens_and_act_inputs():
    env = {'GITHUB_TOKEN': 't', 'GH_TOKEN': 't', 'INPUT_GITHUB-TOKEN': 't', 'INPUT_URI': '.', 'PATH': '/bin',
           'GITHUB_SHA': 'x', 'DATABRICKS_HOST': 'h'}
    removed = gha.scrub_credentials(env)
    assert removed == ['GH_TOKEN', 'GITHUB_TOKEN', 'INPUT_GITHUB-TOKEN', 'INPUT_URI']
    assert env == {'PATH': '/bin', 'GITHUB_SHA': 'x', 'DATABRICKS_HOST': 'h'}


def test_parse_parameters():
    text = '\n# comment\nalpha = 0.5\nnote=a = b \n\n  path=data/x.csv\n'
    assert parse_parameters(text) == {'alpha': '0.5', 'note': 'a = b', 'path': 'data/x.csv'}
    with pytest.raises(BadArgumentError, match='line 1'):
        parse_parameters('novalue')
    with pytest.raises(BadArgumentError, match='twice'):
        parse_parameters('a=1\na=2')
