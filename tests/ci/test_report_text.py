"""Rendering the report (size caps, escaping, the hidden marker) and reading lint findings back."""
from __future__ import annotations

import subprocess

from mlproj.ci import findings
from mlproj.ci.markdown import COMMENT_CAP, LintSummary, Report, commit_state, conclusion, description, marker, render
from tests.helpers import MLPROJ


def _report(**kw) -> Report:
    base = dict(key='.:train', entry_point='train', project='.', status='FINISHED', run_id='r' * 32,
                experiment_id='3', params={'alpha': '0.5'}, metrics={'rmse': 0.123456789})
    base.update(kw)
    return Report(**base)


def test_render_fits_the_cap_by_dropping_rows():
    many = {f'param_{i:05d}': 'x' * 200 for i in range(3000)}
    text = render(_report(params=many), COMMENT_CAP)
    assert len(text.encode()) <= COMMENT_CAP
    assert 'more not shown; see the MLflow run' in text
    assert '`param_00000`' in text
    small = render(_report(), COMMENT_CAP)
    assert 'FINISHED' in small and '`0.123457`' in small and 'not shown' not in small


def test_cells_cannot_break_the_table_or_the_marker():
    text = render(_report(params={'a|b': 'x|y\nz `code`'}), 10_000)
    assert "`a\\|b` | `x\\|y z 'code'`" in text
    m = marker('evil --> <script> key')
    assert m.startswith('<!-- mlproj-report: ') and m.endswith(' -->') and m.count('-->') == 1


def test_status_description_is_at_most_140_chars():
    metrics = {f'metric_with_a_long_name_{i}': i / 7 for i in range(40)}
    text = description(_report(metrics=metrics, duration_s=12.0))
    assert len(text) <= 140 and text.startswith('train: FINISHED in 12s · ')
    assert description(_report(status='ERROR', error='parameter alpha must be a float', metrics={})) == \
        'train: ERROR (parameter alpha must be a float)'


def test_states_and_conclusions():
    assert (commit_state(_report()), conclusion(_report())) == ('success', 'success')
    assert (commit_state(_report(status='FAILED')), conclusion(_report(status='FAILED'))) == ('failure', 'failure')
    assert (commit_state(_report(status='KILLED')), conclusion(_report(status='KILLED'))) == ('failure', 'cancelled')
    assert commit_state(_report(status='ERROR')) == 'error'
    assert commit_state(_report(status='RUNNING')) == 'pending'
    lint_fail = _report(status='', lint=LintSummary(errors=1))
    assert (commit_state(lint_fail), conclusion(lint_fail)) == ('failure', 'failure')
    assert render(lint_fail, 5000).startswith('### ❌ mlproj lint: 1 error')


def _lint_github(path) -> list[str]:
    got = subprocess.run([MLPROJ, 'lint', '--format', 'github', str(path)], capture_output=True, text=True,
                         cwd=path.parent)
    assert got.returncode in (0, 1), got.stderr
    return got.stdout.splitlines()


def test_findings_from_real_lint_output(tmp_path):
    project = tmp_path / 'p'
    project.mkdir()
    (project / 'MLproject').write_text(
        'name: x\n'
        'entry_points:\n'
        '  main:\n'
        '    parameters:\n'
        '      alpha: {type: floaty, default: 1}\n'
        '      unused: {type: int, default: 1}\n'
        '    command: "python x.py {alpha}"\n'
    )
    found = findings.parse(_lint_github(project))
    assert found, 'mlproj lint printed no annotations'
    levels = {a.level for a in found}
    assert 'error' in levels and 'warning' in levels
    for a in found:
        assert a.file and a.file.endswith('MLproject') and a.line and a.title
        payload = findings.to_check_annotation(a, str(tmp_path))
        assert payload['path'] == 'p/MLproject'  # relative to the workspace, as the Checks API wants
        assert payload['annotation_level'] in ('failure', 'warning')
    summary = findings.summarize(found)
    assert summary.errors >= 1 and summary.warnings >= 1
    assert summary.lines[0].startswith('p/MLproject:') or '/p/MLproject:' in summary.lines[0]


def test_parse_unescapes_and_skips_other_lines():
    lines = ['plain text', '::group::x', '::error file=a%2Cb.txt,line=3,col=2,endColumn=9,title=T%3A x::m%25 %0Anext',
             '::notice::no file']
    got = findings.parse(lines)
    assert got[0] == findings.Annotation('error', 'm% \nnext', 'a,b.txt', 3, None, 2, 9, 'T: x')
    assert findings.to_check_annotation(got[0]) == {
        'path': 'a,b.txt', 'start_line': 3, 'end_line': 3, 'annotation_level': 'failure', 'message': 'm% \nnext',
        'start_column': 2, 'end_column': 9, 'title': 'T: x'}
    assert got[1].file is None and findings.to_check_annotation(got[1]) is None
    assert [len(b) for b in findings.batches(list(range(121)))] == [50, 50, 21]
