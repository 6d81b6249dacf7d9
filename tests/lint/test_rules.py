"""Every rule has a failing and a passing fixture; the loader (`mlproj run`) agrees with lint."""
from __future__ import annotations

import pytest

from mlproj.errors import SpecError
from mlproj.lint import lint_paths, load_config
from mlproj.rules import RULES, RUN_EFFECT_TEXT
from mlproj.spec import load_project
from tests.helpers.lint import FIXTURES, fixture_dirs

GENERATED = {'MLP018'}  # case variants of a file name cannot live in Git portably: made in tmp_path


def lint_dir(directory, **kw):
    return lint_paths([str(directory)], load_config(None, **kw))


def test_every_rule_has_a_failing_and_a_passing_fixture():
    have_bad = {d.parent.name for d in fixture_dirs('bad')}
    have_good = {d.parent.name for d in fixture_dirs('good')}
    assert set(RULES) - GENERATED == have_bad == have_good


def _findings(directory, rule):
    result = lint_dir(directory)
    rel = [(i.finding.path[len(str(directory)) + 1:], i.rule) for i in result.issues]
    return result, sorted(f'{where}:{i.finding.line}:{i.finding.col}'.replace(':0:0', '') + f' {i.rule}'
                          for (where, _), i in zip(rel, result.issues) if i.rule == rule)


@pytest.mark.parametrize('directory', fixture_dirs('bad'), ids=lambda d: d.parent.name)
def test_bad_fixture_reports_exactly_the_expected_findings(directory):
    rule = directory.parent.name
    expected = sorted((directory / 'EXPECTED').read_text().splitlines())
    _, got = _findings(directory, rule)
    assert got == expected


@pytest.mark.parametrize('directory', fixture_dirs('good'), ids=lambda d: d.parent.name)
def test_good_fixture_is_clean(directory):
    result = lint_dir(directory)
    assert [str(i.finding) for i in result.issues] == []
    assert result.exit_code(strict=True) == 0


def test_case_variants_are_reported(tmp_path):
    (tmp_path / 'MLproject').write_text('entry_points: {main: {command: "true"}}\n')
    (tmp_path / 'mlproject').write_text('entry_points: {main: {command: "true"}}\n')
    result = lint_dir(tmp_path)
    assert [i.rule for i in result.issues] == ['MLP018']
    assert result.exit_code(strict=False) == 1
    (tmp_path / 'mlproject').unlink()
    assert lint_dir(tmp_path).issues == ()


def _run_outcome(directory, strict: bool) -> str | None:
    """The rule id `mlproj run` (``--strict``) refuses the fixture with, or None when it runs."""
    try:
        project = load_project(directory, refuse_lint_errors=strict)
        for name in project.entry_points:  # errors of one entry point are raised when it is run
            project.get_entry_point(name)
    except SpecError as e:
        return str(e).split()[0]
    return None


@pytest.mark.parametrize('strict', [False, True], ids=['run', 'run --strict'])
@pytest.mark.parametrize('directory', fixture_dirs('bad'), ids=lambda d: d.parent.name)
def test_loader_rejects_what_lint_reports_as_spec_errors(directory, strict):
    """`mlproj run` refuses exactly the lint errors whose run-time effect is to refuse (with --strict:
    also those MLflow runs), with the same id; MLP006 is refused only when the default is used."""
    result = lint_dir(directory)
    effects = ('refuse', 'entry-point', 'strict') if strict else ('refuse', 'entry-point')
    spec_errors = [i for i in result.issues if i.severity == 'error' and RULES[i.rule].scope == 'spec'
                   and i.finding.path.endswith(('MLproject',)) and RULES[i.rule].run_effect in effects]
    refused = _run_outcome(directory, strict)
    if refused is not None:
        assert spec_errors, f'run rejects but lint reports no spec error that run refuses: {refused}'
        assert refused in {i.rule for i in spec_errors}
    else:
        assert not spec_errors, 'lint reports a spec error that `mlproj run` should refuse but accepts'


@pytest.mark.parametrize('directory', fixture_dirs('good'), ids=lambda d: d.parent.name)
def test_loader_accepts_good_fixtures(directory):
    if (directory / 'MLproject').exists():
        project = load_project(directory)
        assert project.errors == [] and project.warnings == []


def test_declared_script_entry_point_runs_the_script_with_its_parameters():
    project = load_project(FIXTURES / 'MLP014' / 'good')
    ep = project.get_entry_point('train.py')
    assert ep.command == 'python train.py --epochs {epochs}'
    assert ep.script


def test_rule_table_is_stable():
    # ids are never renumbered: name and severity of the first rules are part of the public contract
    assert (RULES['MLP001'].name, RULES['MLP012'].name, RULES['MLP016'].severity) == (
        'yaml-syntax', 'unknown-placeholder', 'warning')
    for rule in RULES.values():
        assert rule.severity in ('error', 'warning') and rule.scope in ('spec', 'lint') and rule.doc
        assert rule.run_effect in ('refuse', 'entry-point', 'strict', 'strict-on-use', 'warn', 'none')
        assert (rule.run_effect == 'none') == (rule.scope == 'lint')


def test_readme_lists_every_rule_and_the_editor_modeline():
    from tests.helpers import REPO

    text = (REPO / 'README.md').read_text()
    for rule in RULES.values():
        assert f'| {rule.id} | {rule.name} | {rule.severity} |' in text, rule.id
        if rule.scope == 'spec':  # the run-time effect column of the same table
            assert f'| {rule.id} | {rule.name} | {rule.severity} | run + lint | {RUN_EFFECT_TEXT[rule.run_effect]} |' \
                in text, rule.id
    assert '# yaml-language-server: $schema=' in text


def test_run_explains_a_misnamed_project_file(tmp_path):
    (tmp_path / 'MLproject.yaml').write_text('entry_points: {main: {command: "true"}}\n')
    with pytest.raises(SpecError, match='MLproject.yaml is ignored, rename it to MLproject'):
        load_project(tmp_path).get_entry_point('main')


def test_run_prints_no_suppressed_warning(tmp_path):
    (tmp_path / 'MLproject').write_text('entry_points:\n  main:\n    parameters:\n'
                                        '      a: {default: 1}  # mlproj: disable=MLP016\n'
                                        '      b: {default: 1}\n    command: "true"\n')
    assert [(f.rule, f.line) for f in load_project(tmp_path).warnings] == [('MLP016', 5)]


@pytest.mark.parametrize('text', ['conda_env: {}\n', 'python_env: []\n', 'docker_env: []\n', 'docker_env: 0\n',
                                  'name: no\n'])
def test_falsy_values_of_the_wrong_type_are_reported(tmp_path, text):
    # MLflow silently treats these as absent; they are mistakes (an empty mapping where a path belongs,
    # a project named `no` that YAML reads as false)
    (tmp_path / 'MLproject').write_text(text)
    with pytest.raises(SpecError, match='MLP003'):
        load_project(tmp_path)
