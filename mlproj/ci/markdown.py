"""The run report: one data value rendered for the step summary, the PR comment and the check run.

Size limits differ per channel (step summary 1 MiB, comment 65,536 chars, check run summary
65,535 chars, status description 140 chars); ``render`` drops table rows until the text fits and
says how many were left out.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from mlproj.tags import FAILED, FINISHED, KILLED, RUNNING, SCHEDULED

STATUS_ICON = {
    FINISHED: '✅', FAILED: '❌', KILLED: '⏹️', 'ERROR': '❌', RUNNING: '⏳', SCHEDULED: '⏳',
    'SKIPPED': '➖',
}
COMMENT_CAP = 65_000        # GitHub rejects issue comments over 65,536 characters
CHECK_SUMMARY_CAP = 65_000  # check run output.summary: 65,535 characters
DESCRIPTION_CAP = 140       # commit status description
CELL_CAP = 300

MARKER_PREFIX = '<!-- mlproj-report: '


@dataclass
class LintSummary:
    errors: int = 0
    warnings: int = 0
    notices: int = 0
    lines: list[str] = field(default_factory=list)  # "path:line:col: message", first ones only

    @property
    def total(self) -> int:
        return self.errors + self.warnings + self.notices

    def counts(self) -> str:
        parts = [f'{n} {word}{"s" if n != 1 else ""}'
                 for n, word in ((self.errors, 'error'), (self.warnings, 'warning'), (self.notices, 'notice')) if n]
        return ', '.join(parts) or 'no findings'


@dataclass
class Report:
    key: str                      # project + entry point: one sticky comment per key
    entry_point: str
    project: str                  # the URI as the user gave it ('.' for the workspace)
    status: str = ''              # FINISHED/FAILED/KILLED/RUNNING/ERROR/SKIPPED; '' = lint only
    run_id: str = ''
    experiment_id: str = ''
    run_url: str = ''             # MLflow UI page of the run, when the store has a UI
    workflow_url: str = ''
    databricks_url: str = ''
    commit: str = ''
    commit_url: str = ''
    backend: str = ''
    env_manager: str = ''
    duration_s: float | None = None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ''
    lint: LintSummary | None = None

    @property
    def ok(self) -> bool:
        lint_ok = self.lint is None or self.lint.errors == 0
        return lint_ok and self.status in (FINISHED, 'SKIPPED', '')

    @property
    def finished(self) -> bool:
        return self.status not in (RUNNING, SCHEDULED)


def marker(key: str) -> str:
    """The hidden HTML comment that identifies a sticky comment; ``key`` cannot close it early."""
    safe = re.sub(r'[^A-Za-z0-9_.:/#@+=~-]', '_', key)[:200]
    return f'{MARKER_PREFIX}{safe} -->'


def cell(value: object, cap: int = CELL_CAP) -> str:
    text = ' '.join(str(value).split())
    if len(text) > cap:
        text = text[:cap - 1] + '…'
    text = text.replace('\\', '\\\\').replace('|', '\\|').replace('`', "'")
    return f'`{text}`' if text else ' '


def format_metric(value: float) -> str:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return f'{value:.6g}'


def title(report: Report) -> str:
    if report.status == '' and report.lint is not None:
        return f'mlproj lint: {report.lint.counts()}'
    name = f'mlproj run `{report.entry_point}`'
    if report.status == 'ERROR':
        return f'{name} could not start'
    return f'{name} {report.status}'


def icon(report: Report) -> str:
    if report.status == '' and report.lint is not None:
        return '✅' if report.lint.errors == 0 else '❌'
    return STATUS_ICON.get(report.status, '❔')


def _link(text: str, url: str) -> str:
    return f'[{text}]({url})' if url else text


def _render(report: Report, max_rows: int | None, heading: str) -> str:
    lines = [f'{heading} {icon(report)} {title(report)}', '']
    rows: list[tuple[str, str]] = []
    project = cell(report.project or '.')
    if report.commit:
        project += ' @ ' + _link(f'`{report.commit[:12]}`', report.commit_url)
    rows.append(('Project', project))
    rows.append(('Entry point', cell(report.entry_point)))
    if report.backend:
        backend = cell(report.backend)
        if report.env_manager:
            backend += f' (env: {cell(report.env_manager)})'
        rows.append(('Backend', backend))
    if report.run_id:
        run = _link(f'`{report.run_id}`', report.run_url)
        if report.experiment_id:
            run += f' in experiment `{report.experiment_id}`'
        rows.append(('MLflow run', run))
    if report.databricks_url:
        rows.append(('Databricks run', _link('job run', report.databricks_url)))
    if report.duration_s is not None:
        rows.append(('Duration', f'{report.duration_s:.1f} s'))
    if report.workflow_url:
        rows.append(('Workflow run', _link('logs', report.workflow_url)))
    lines += ['| | |', '|---|---|'] + [f'| {k} | {v} |' for k, v in rows] + ['']
    if report.error:
        lines += ['**Error:** ' + cell(report.error, 1000), '']
    lines += _table('Parameters', 'Parameter', [(k, cell(v)) for k, v in report.params.items()], max_rows)
    lines += _table('Metrics (final values)', 'Metric',
                    [(k, f'`{format_metric(v)}`') for k, v in sorted(report.metrics.items())], max_rows)
    if report.lint is not None:
        lint = report.lint
        lines += [f'**Lint:** {lint.counts()}', '']
        shown = lint.lines if max_rows is None else lint.lines[:max_rows]
        if shown:
            lines += ['```'] + [' '.join(s.split())[:500] for s in shown] + ['```', '']
        if len(shown) < lint.total:
            lines += [f'*{lint.total - len(shown)} more finding(s) in the workflow log.*', '']
    return '\n'.join(lines)


def _table(heading: str, column: str, items: list[tuple[str, str]], max_rows: int | None) -> list[str]:
    if not items:
        return []
    shown = items if max_rows is None else items[:max_rows]
    out = [f'<details{" open" if len(items) <= 20 else ""}><summary>{heading} ({len(items)})</summary>', '',
           f'| {column} | Value |', '|---|---|']
    out += [f'| {cell(k)} | {v} |' for k, v in shown]
    if len(shown) < len(items):
        out += ['', f'*{len(items) - len(shown)} more not shown; see the MLflow run.*']
    return out + ['', '</details>', '']


def render(report: Report, cap: int, *, heading: str = '###', prefix: str = '') -> str:
    """Markdown for ``report`` within ``cap`` UTF-8 bytes (rows dropped first, then text cut)."""
    from mlproj.ci.gha import cap_text

    max_rows: int | None = None
    while True:
        text = prefix + _render(report, max_rows, heading)
        if len(text.encode('utf-8')) <= cap:
            return text
        biggest = max(len(report.params), len(report.metrics), len(report.lint.lines) if report.lint else 0)
        max_rows = (biggest if max_rows is None else max_rows) // 2
        if max_rows == 0:
            return cap_text(prefix + _render(report, 0, heading), cap)


def description(report: Report) -> str:
    """A commit status description: status, a few metrics, at most 140 characters."""
    if report.status == '' and report.lint is not None:
        text = f'lint: {report.lint.counts()}'
    else:
        text = f'{report.entry_point}: {report.status}'
        if report.status == 'ERROR' and report.error:
            text += f' ({report.error})'
        if report.duration_s is not None and report.status in (FINISHED, FAILED, KILLED):
            text += f' in {report.duration_s:.0f}s'
        if report.metrics:
            text += ' · ' + ', '.join(f'{k}={format_metric(v)}' for k, v in sorted(report.metrics.items()))
        if report.lint is not None and report.lint.total:
            text += f' · lint: {report.lint.counts()}'
    text = ' '.join(text.split())
    return text if len(text) <= DESCRIPTION_CAP else text[:DESCRIPTION_CAP - 1] + '…'


def commit_state(report: Report) -> str:
    if not report.finished:
        return 'pending'
    if report.ok:
        return 'success'
    return 'error' if report.status == 'ERROR' else 'failure'


def conclusion(report: Report) -> str:
    if report.status == KILLED:
        return 'cancelled'
    return 'success' if report.ok else 'failure'
