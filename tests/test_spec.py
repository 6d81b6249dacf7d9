from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlproj.errors import SpecError
from mlproj.spec import iter_template, load_project, parse_mlproject, placeholders
from tests.helpers import write_project

GREETER = """\
name: example
conda_env: conda.yaml
entry_points:
  main:
    command: "echo 'Main entry point'"
  greeter:
    parameters:
      greeting: {type: string, default: "hi"}
      name: string
    command: "python greeter.py {greeting} {name}"
  line_count:
    parameters:
      path: path
    command: "cat {path} | wc -l"
"""


def test_greeter_parses_like_mlflow(tmp_path):
    write_project(tmp_path, GREETER, {'conda.yaml': 'dependencies: [python=3.11]\n'})
    project = load_project(tmp_path)
    ep = project.get_entry_point('greeter')
    assert ep.command == 'python greeter.py {greeting} {name}'
    assert ep.parameters['name'].type == 'string' and ep.parameters['name'].required
    assert ep.parameters['greeting'].default == 'hi' and not ep.parameters['greeting'].required
    assert project.env.kind == 'conda' and project.env.path == tmp_path / 'conda.yaml'
    assert project.name == 'example'


def test_lowercase_file_name_is_found(tmp_path):
    (tmp_path / 'mlproject').write_text('entry_points: {main: {command: "true"}}\n')
    assert 'main' in load_project(tmp_path).entry_points


def test_two_case_variants_are_an_error(tmp_path):
    (tmp_path / 'MLproject').write_text('name: a\n')
    (tmp_path / 'mlproject').write_text('name: b\n')
    with pytest.raises(SpecError, match='MLP018'):
        load_project(tmp_path)


def test_misnamed_yaml_file_is_reported_not_loaded(tmp_path):
    (tmp_path / 'MLproject.yaml').write_text('entry_points: {main: {command: "true"}}\n')
    project = load_project(tmp_path)
    assert project.entry_points == {}
    assert [f.rule for f in project.warnings] == ['MLP015']


@pytest.mark.parametrize('files,kind', [
    ({}, 'none'),
    ({'conda.yaml': 'x: 1\n'}, 'conda'),
    ({'python_env.yaml': 'python: "3.11"\n'}, 'python'),
    ({'python_env.yaml': 'python: "3.11"\n', 'conda.yaml': 'x: 1\n'}, 'python'),  # MLflow's precedence
])
def test_environment_by_convention(tmp_path, files, kind):
    write_project(tmp_path, None, files)
    assert load_project(tmp_path).env.kind == kind


def test_declared_env_wins_over_convention_files(tmp_path):
    write_project(tmp_path, 'conda_env: env.yaml\n', {'env.yaml': 'x: 1\n', 'python_env.yaml': 'python: "3"\n'})
    env = load_project(tmp_path).env
    assert env.kind == 'conda' and env.path.name == 'env.yaml' and env.declared


def test_docker_env(tmp_path):
    write_project(tmp_path, 'name: d\ndocker_env:\n  image: img:1\n  volumes: ["/a:/b"]\n'
                  '  environment: [HOME, [X, "1"], [Y, 2]]\n')
    docker = load_project(tmp_path).env.docker
    assert docker.image == 'img:1' and docker.volumes == ('/a:/b',)
    assert docker.environment == ('HOME', ('X', '1'), ('Y', '2'))


@pytest.mark.parametrize('text,rule,line,col', [
    ('entry_points:\n  main:\n    command: "a\n', 'MLP001', 4, 1),
    ('name: a\nname: b\n', 'MLP002', 2, 1),
    ('entry_points: [a]\n', 'MLP003', 1, 15),
    ('entry_points:\n  main:\n    parameters:\n      a: 1\n    command: x\n', 'MLP003', 4, 10),
    ('entry_points:\n  main:\n    parameters:\n      a: {type: integr}\n    command: "{a}"\n', 'MLP005', 4, 17),
    ('docker_env: {image: x}\nconda_env: c.yaml\n', 'MLP007', 2, 1),
    ('docker_env: {volumes: [a]}\n', 'MLP008', 1, 13),
    ('docker_env: {image: x, volumes: a}\n', 'MLP009', 1, 33),
    ('docker_env: {image: x, environment: [[a, b, c]]}\n', 'MLP010', 1, 38),
    ('conda_env: missing.yaml\n', 'MLP011', 1, 12),
    ('entry_points:\n  main:\n    command: "echo {zzz}"\n', 'MLP012', 3, 14),
])
def test_errors_have_rule_and_position(tmp_path, text, rule, line, col):
    # MLP002 and MLP005 are refused only by `mlproj run --strict` (tests/compat: run accepts them)
    write_project(tmp_path, text)
    with pytest.raises(SpecError) as e:
        load_project(tmp_path, refuse_lint_errors=True)
    assert rule in str(e.value)
    assert f'MLproject:{line}:{col}' in str(e.value)


def test_bad_default_is_a_finding_with_position_but_never_refused_at_load(tmp_path):
    write_project(tmp_path, 'entry_points:\n  main:\n    parameters:\n      a: {type: int, default: abc}\n'
                            '    command: "{a}"\n')
    project = load_project(tmp_path, refuse_lint_errors=True)
    assert [(f.rule, f.line, f.col) for f in project.findings] == [('MLP006', 4, 31)]


def test_unknown_keys_warn_with_suggestion(tmp_path):
    write_project(tmp_path, 'entry_point:\n  main: {command: x}\n')
    project = load_project(tmp_path)
    (finding,) = project.warnings
    assert finding.rule == 'MLP004' and "did you mean 'entry_points'" in finding.message
    assert (finding.line, finding.col) == (1, 1)


def test_empty_file_is_a_convention_project_with_warning(tmp_path):
    write_project(tmp_path, '', {'train.py': 'print(1)\n'})
    project = load_project(tmp_path)
    assert [f.rule for f in project.warnings] == ['MLP013']
    assert project.get_entry_point('train.py').command == 'python train.py'


def test_convention_entry_points(tmp_path, monkeypatch):
    write_project(tmp_path, None, {'my script.py': '', 'run.sh': '', 'sub/x.py': ''})
    monkeypatch.setenv('SHELL', '/bin/bash')
    project = load_project(tmp_path)
    assert project.get_entry_point('my script.py').command == "python 'my script.py'"
    assert project.get_entry_point('run.sh').command == '/bin/bash run.sh'
    assert project.get_entry_point('sub/x.py').command == 'python sub/x.py'
    with pytest.raises(SpecError, match="unknown entry point 'prog.scala'"):
        project.get_entry_point('prog.scala')
    with pytest.raises(SpecError, match='does not exist'):
        project.get_entry_point('missing.py')
    with pytest.raises(SpecError, match='escapes'):
        project.get_entry_point('../outside.py')


def test_unknown_entry_point_suggests(tmp_path):
    write_project(tmp_path, 'entry_points:\n  train: {command: x}\n')
    with pytest.raises(SpecError, match="did you mean 'train'"):
        load_project(tmp_path).get_entry_point('trian')


def test_template_braces():
    assert list(iter_template('a {{x}} {y} }}')) == [('text', 'a {x} '), ('param', 'y'), ('text', ' }')]
    assert placeholders("awk '{print $1}' {file}") == ['file']
    assert placeholders('{learning-rate}') == ['learning-rate']


def test_defaults_of_each_type_are_checked(tmp_path):
    text = ('entry_points:\n  main:\n    parameters:\n'
            '      i: {type: int, default: 3}\n      f: {type: float, default: 1e-3}\n'
            '      b: {type: bool, default: false}\n      n: {type: float, default: 2}\n'
            '    command: "{i} {f} {b} {n}"\n')
    write_project(tmp_path, text)
    ep = load_project(tmp_path).get_entry_point('main')
    assert [p.default_text() for p in ep.parameters.values()] == ['3', '1e-3', 'False', '2']


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                         st.text(max_size=20))
yaml_values = st.recursive(yaml_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)), max_leaves=20)
project_like = st.fixed_dictionaries({}, optional={
    'name': yaml_values,
    'entry_points': st.one_of(yaml_values, st.dictionaries(st.text(max_size=8), st.one_of(
        yaml_values, st.fixed_dictionaries({}, optional={
            'command': yaml_values,
            'parameters': st.one_of(yaml_values, st.dictionaries(st.text(max_size=8), yaml_values, max_size=3)),
        })), max_size=3)),
    'docker_env': yaml_values, 'conda_env': yaml_values, 'python_env': yaml_values,
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=project_like)
def test_loader_never_raises_on_structures(tmp_path, data):
    import yaml

    text = yaml.safe_dump(data)
    project = parse_mlproject(text, Path(tmp_path))
    for f in project.findings:
        assert f.rule.startswith('MLP') and f.message


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_loader_never_raises_on_text(text):
    parse_mlproject(text, Path(os.getcwd()))


def test_entry_point_without_command_fails_only_when_run(tmp_path):
    write_project(tmp_path, 'entry_points:\n  main:\n    command: "echo hi"\n  other:\n    parameters:\n      a: int\n')
    project = load_project(tmp_path)  # MLflow runs `main` of such a file; so do we
    assert project.get_entry_point('main').command == 'echo hi'
    with pytest.raises(SpecError, match=r"MLP014 entry point 'other' has no command") as e:
        project.get_entry_point('other')
    assert 'MLproject:4:3' in str(e.value)


@pytest.mark.parametrize('raw, entry_points, error', [
    (b'\xef\xbb\xbfname: p\nentry_points:\n  main:\n    command: "true"\n', {'main'}, None),
    (b'\xef\xbb\xbf\xef\xbb\xbfname: p\n', set(), None),  # one BOM is dropped: a second one is text
    (b'\xef\xbb\xbfname: p\xff\n', set(), 'MLproject is not UTF-8 text (byte 7)'),  # counted after the BOM
    (b'name: p\xff\n', set(), 'MLproject is not UTF-8 text (byte 7)'),
])
def test_a_leading_bom_is_dropped_as_utf_8_sig_drops_it(tmp_path, raw, entry_points, error):
    (tmp_path / 'MLproject').write_bytes(raw)
    if error is None:
        raw.decode('utf-8-sig')
        assert set(load_project(tmp_path).entry_points) >= entry_points
        return
    with pytest.raises(UnicodeDecodeError) as codec:
        raw.decode('utf-8-sig')
    assert f'(byte {codec.value.start})' in error  # the offset the utf-8-sig codec itself reports
    with pytest.raises(SpecError, match=re.escape(error)):
        load_project(tmp_path)
