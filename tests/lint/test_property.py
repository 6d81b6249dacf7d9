"""Hypothesis: no YAML text or MLproject-like structure makes the loader or the CLI raise."""
from __future__ import annotations

import os
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlproj.envs.envfiles import validate_conda_env, validate_python_env
from mlproj.lint import lint_paths, load_config
from mlproj.lint.engine import lint_blobs
from mlproj.rules import RULES
from mlproj.spec import parse_mlproject

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=12),
                    st.sampled_from(['{a}', 'python x.py {a}', '"{a}"', 'int', 'float', 'bool', 'path', '', '..']))
values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4),
                                                   st.dictionaries(st.one_of(st.text(max_size=6), st.integers()),
                                                                   c, max_size=4)), max_leaves=16)
param = st.one_of(values, st.fixed_dictionaries({}, optional={
    'type': st.one_of(st.sampled_from(['int', 'float', 'bool', 'path', 'uri', 'string', 'integr']), values),
    'default': values}))
entry = st.one_of(values, st.fixed_dictionaries({}, optional={
    'command': st.one_of(values, st.sampled_from(['echo {a}', "echo '{a}'", 'python m.py {b}', 'bash r.sh'])),
    'parameters': st.one_of(values, st.dictionaries(st.sampled_from(['a', 'b', 'c']), param, max_size=3)),
}))
mlproject = st.fixed_dictionaries({}, optional={
    'name': values,
    'entry_points': st.one_of(values, st.dictionaries(st.sampled_from(['main', 'm.py', 'r.sh', 'x']), entry,
                                                      max_size=3)),
    'docker_env': st.one_of(values, st.fixed_dictionaries({}, optional={
        'image': values, 'volumes': values, 'environment': values})),
    'conda_env': st.one_of(values, st.just('conda.yaml')),
    'python_env': st.one_of(values, st.just('python_env.yaml')),
    'databricks_spark_job': values,
    'entry_point': values,
})
yaml_fragments = st.lists(st.sampled_from([
    'entry_points:', '  main:', '    command: ', '"{a}"', "'", '{', '}', '[', ']', ': ', '- ', '&a ', '*a', '<<: *a',
    '!!binary', '!!python/object:os.system', '\t', '\n', '  ', '#', '# mlproj: disable=', 'MLP016', 'x', '1e9999',
    '2001-13-45', '? ', '|', '>', '%YAML 1.1\n', '---\n', '...\n', '\x00', '\ufeff', 'é',
]), max_size=30).map(''.join)


def _check(findings):
    for f in findings:
        assert f.rule in RULES and f.message and isinstance(f.line, int) and isinstance(f.col, int)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mlproject, env_text=st.one_of(yaml_fragments, values.map(yaml.safe_dump)))
def test_structures_never_raise(tmp_path, data, env_text):
    (tmp_path / 'conda.yaml').write_text(env_text)
    (tmp_path / 'python_env.yaml').write_text(env_text)
    text = yaml.safe_dump(data, allow_unicode=True)
    project = parse_mlproject(text, tmp_path)
    _check(project.findings)
    result = lint_blobs([('MLproject', tmp_path / 'MLproject', text.encode())], load_config(None))
    _check(i.finding for i in result.issues)
    _check(validate_conda_env(tmp_path / 'conda.yaml'))
    _check(validate_python_env(tmp_path / 'python_env.yaml'))


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(yaml_fragments, st.text(max_size=120)))
def test_text_never_raises(text):
    _check(parse_mlproject(text, Path(os.getcwd())).findings)
    result = lint_blobs([('MLproject', Path('MLproject'), text.encode('utf-8', 'surrogatepass'))], load_config(None))
    _check(i.finding for i in result.issues)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=80))
def test_bytes_never_raise(data):
    result = lint_blobs([('MLproject', Path('MLproject'), data)], load_config(None))
    _check(i.finding for i in result.issues)


def test_alias_bomb_is_a_finding_not_a_hang(tmp_path):
    lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]']
    for i in range(1, 9):
        lines.append(f'a{i}: &a{i} [' + ', '.join([f'*a{i - 1}'] * 10) + ']')
    (tmp_path / 'MLproject').write_text('\n'.join(lines) + '\n')
    result = lint_paths([str(tmp_path)], load_config(None))
    assert [i.rule for i in result.issues] == ['MLP001']
    assert 'more than 100000 nodes' in result.issues[0].finding.message


def test_recursive_alias_is_a_finding(tmp_path):
    (tmp_path / 'MLproject').write_text('a: &x [*x]\nb: &y {k: *y}\n')
    result = lint_paths([str(tmp_path)], load_config(None))
    assert [i.rule for i in result.issues] == ['MLP001']


def test_the_cli_never_prints_a_traceback(tmp_path):
    """Every fragment as a real file through the real CLI: exit 0 or 1, never a traceback."""
    from tests.helpers.lint import run_cli

    samples = ['', '\x00', '{', 'entry_points: !!python/object:os.system {}', 'a: &a [*a]', '- 1\n- 2',
               'entry_points: {main: {command: 5, parameters: {a: {type: [1]}}}}', '\ufeffname: x', 'x: 1e9999',
               'python_env: ../../etc/passwd', 'conda_env: {a: 1}', 'docker_env: [1]', 'name: 2001-13-45']
    for i, text in enumerate(samples):
        d = tmp_path / f'p{i}'
        d.mkdir()
        (d / 'MLproject').write_text(text)
    r = run_cli(['lint', '.'], tmp_path)
    assert r.code == 1 and 'Traceback' not in r.err + r.out and 'internal error' not in r.err
    assert len([ln for ln in r.out.splitlines() if ': MLP0' in ln]) >= len(samples) - 2
