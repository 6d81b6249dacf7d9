"""``mlproj ci report``: read the run back from MLflow and report it on GitHub.

Every channel is independent and a refusal is a warning, not a failure: on a pull request from
a fork the token is read-only, and the step summary (written by the run step) must still be the
place where the result shows.  ``--strict`` turns refusals into a non-zero exit.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from mlproj.ci import findings as ann
from mlproj.ci import gha, state
from mlproj.ci.markdown import Report
from mlproj.ci.runinfo import build_report
from mlproj.errors import MlprojError
from mlproj.tags import RUNNING


@dataclass
class ReportOptions:
    state_file: str | None = None
    run_id: str | None = None
    tracking_uri: str | None = None
    lint_file: str | None = None
    comment: bool = False
    check: str = 'status'          # status | check-run | none
    start: bool = False
    key: str | None = None
    uri: str | None = None
    entry_point: str | None = None
    repo: str | None = None
    sha: str | None = None
    pr_number: int | None = None
    api_url: str | None = None     # default: GITHUB_API_URL, else https://api.github.com
    token: str = ''
    strict: bool = False


def context_name(key: str) -> str:
    """Commit status context and check-run name for one project + entry point."""
    return f'mlproj ({key})'


def _say(level: str, message: str) -> None:
    gha.annotate(level, message, title='mlproj report')


def _load_report(opts: ReportOptions, ctx: gha.ActionsContext) -> tuple[Report, list[ann.Annotation]]:
    from mlproj.tracking import get_tracker, resolve_tracking_uri

    st = dict(state.load(opts.state_file))
    if opts.entry_point and not st.get('entry_point'):
        st['entry_point'] = opts.entry_point
    if opts.uri is not None and 'uri' not in st:
        st['uri'] = opts.uri or '.'
    if opts.key:
        st['key'] = opts.key
    run_id = opts.run_id or st.get('run_id') or ''
    st['run_id'] = run_id
    if run_id:
        st['tracking_uri'] = opts.tracking_uri or st.get('tracking_uri') or resolve_tracking_uri(None)
    linted = bool(opts.lint_file) and os.path.exists(opts.lint_file or '')
    found = ann.read_file(opts.lint_file) if linted else []
    lint = ann.summarize(found) if linted else None
    record = None
    if opts.start:
        st['status'] = RUNNING
    elif run_id:
        try:
            record = get_tracker(st['tracking_uri']).get_run(run_id)
        except MlprojError as e:
            _say('warning', f'cannot read run {run_id}: {e}')
        if record is None and not st.get('status'):
            st['status'] = 'ERROR'
            st['error'] = f'run {run_id} could not be read back'
    elif st.get('status') == RUNNING:  # the run step ended without recording a run
        st['status'] = 'ERROR'
        st['error'] = st.get('error') or 'the run step ended before a run was created'
    return build_report(st, record, ctx, lint), found


def report_run(opts: ReportOptions) -> int:
    from mlproj.ci.github import GitHubError, Reporter, Target

    ctx = gha.ActionsContext.from_env()
    report, found = _load_report(opts, ctx)
    if not report.run_id and report.status == '' and report.lint is None:
        _say('notice', 'nothing to report: no run and no lint findings file')
        return 0
    target = Target(api_url=(opts.api_url or ctx.api_url).rstrip('/'), repository=opts.repo or ctx.repository,
                    token=opts.token, sha=opts.sha or ctx.head_sha, pr_number=opts.pr_number or ctx.pr_number)
    failures: list[str] = []
    try:
        reporter = Reporter(target)
    except GitHubError as e:
        _say('warning', f'not reporting to GitHub: {e}')
        return 1 if opts.strict else 0
    name = context_name(report.key)
    details = report.run_url or ctx.run_url

    def attempt(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GitHubError as e:
            hint = ''
            if e.permission:
                hint = ' (read-only token? fork PRs cannot write; check the workflow `permissions:`)'
            _say('warning', f'{what} failed: {e}{hint}')
            failures.append(what)
            return None

    if opts.comment and not opts.start:
        if target.pr_number is None:
            _say('notice', 'not a pull request: no PR comment')
        else:
            got = attempt('PR comment', reporter.upsert_comment, report)
            if got:
                print(f'mlproj: PR comment {got[1]} (id {got[0]})', file=sys.stderr)
    if not target.sha and opts.check != 'none':
        _say('warning', 'no commit SHA (set --sha or GITHUB_SHA): no status or check run')
    elif opts.check == 'status':
        got = attempt('commit status', reporter.set_status, report, context=name, target_url=details)
        if got:
            print(f'mlproj: commit status {got} on {target.sha[:12]}', file=sys.stderr)
    elif opts.check == 'check-run':
        if opts.start:
            run_id = attempt('check run', reporter.start_check_run, name, details_url=details)
            if run_id:
                state.update(opts.state_file, check_run_id=run_id)
        else:
            payload = [a for a in (ann.to_check_annotation(x, ctx.workspace or None) for x in found) if a]
            existing = state.load(opts.state_file).get('check_run_id')
            got = attempt('check run', reporter.finish_check_run, report, name, check_run_id=existing,
                          annotations=payload, details_url=details)
            if got:
                print(f'mlproj: check run {got[0]} completed with {len(payload)} annotation(s) '
                      f'in {max(got[1], 1)} request(s)', file=sys.stderr)
    return 1 if (opts.strict and failures) else 0
