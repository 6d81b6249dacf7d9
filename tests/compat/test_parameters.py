"""Parameters as MLflow's ``tests/projects/test_entry_point.py`` exercise them, against mlproj's binder,
plus issue 13 cases 2 (invalid typed defaults such as ``type: int, default: None``) and 5 (a ``uri``
given a local path is made absolute, as the MLflow Projects guide says; MLflow 3 refuses it).
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from mlproj.errors import ParamError
from mlproj.params import bind, build_command
from mlproj.spec import load_project
from tests.helpers.compat import write


@pytest.fixture
def project(example_project):
    return load_project(example_project)


def test_defaults_are_applied_and_extras_stringified(project, tmp_path):
    bound = bind(project.get_entry_point('greeter'), {'name': 'friend', 'excitement': 10}, cwd=tmp_path)
    assert bound.values == {'greeting': 'hi', 'name': 'friend'}
    assert bound.extras == {'excitement': '10'}
    assert build_command(project.get_entry_point('greeter'), bound) == 'python greeter.py hi friend --excitement 10'


def test_missing_required_parameter_is_named(project, tmp_path):
    with pytest.raises(ParamError, match="missing value for parameter 'name'"):
        bind(project.get_entry_point('greeter'), {}, cwd=tmp_path)


def test_values_are_shell_quoted(project, tmp_path):
    ep = project.get_entry_point('greeter')
    command = build_command(ep, bind(ep, {'name': "friend; echo 'hi'"}, cwd=tmp_path))
    assert command == 'python greeter.py hi ' + shlex.quote("friend; echo 'hi'")
    assert shlex.split(command)[-1] == "friend; echo 'hi'"


def test_floats_are_stringified_and_names_are_case_sensitive(tmp_path):
    write(tmp_path, {'MLproject': 'entry_points:\n  main:\n    parameters:\n      alpha: {type: float, default: 0.004}\n'
                                  '    command: "echo {alpha}"\n'})
    ep = load_project(tmp_path).get_entry_point('main')
    bound = bind(ep, {'ALPHA': '1'}, cwd=tmp_path)
    assert bound.values == {'alpha': '0.004'} and bound.extras == {'ALPHA': '1'}


def test_path_local_file_and_file_uri_become_absolute(project, tmp_path):
    data = tmp_path / 'data.txt'
    data.write_text('1\n2\n')
    ep = project.get_entry_point('line_count')
    assert bind(ep, {'path': 'data.txt'}, cwd=tmp_path).values['path'] == str(data)
    assert bind(ep, {'path': data.as_uri()}, cwd=tmp_path).values['path'] == str(data)
    with pytest.raises(ParamError, match="parameter 'path': no such file or directory 'missing.txt'"):
        bind(ep, {'path': 'missing.txt'}, cwd=tmp_path)


def test_path_without_local_resolution_is_kept_as_given(project, tmp_path):
    # a remote backend gets the value as given (MLflow: no storage dir -> raw, nothing downloaded)
    ep = project.get_entry_point('line_count')
    assert bind(ep, {'path': 'data.txt'}, cwd=tmp_path, resolve_paths=False).values['path'] == 'data.txt'


def test_uri_with_a_scheme_passes_unchanged(project, tmp_path):
    ep = project.get_entry_point('download_uri')
    for value in ('file:///tmp/x', 's3://bucket/key', 'https://example.com/data.csv', 'runs:/abc/model'):
        assert bind(ep, {'uri': value}, cwd=tmp_path).values['uri'] == value


def test_uri_given_a_local_path_is_made_absolute(project, tmp_path):
    """Case 5: the guide's behaviour (MLflow 3: "Expected URI for parameter uri"), a deliberate difference."""
    ep = project.get_entry_point('download_uri')
    bound = bind(ep, {'uri': 'out/data'}, cwd=tmp_path)  # it need not exist: a uri may name an output
    assert bound.values['uri'] == str(tmp_path / 'out' / 'data')
    assert bound.logged['uri'] == str(tmp_path / 'out' / 'data')
    assert bind(ep, {'uri': '/abs/x'}, cwd=tmp_path).values['uri'] == '/abs/x'
    # for a remote backend it is passed as given
    assert bind(ep, {'uri': 'out/data'}, cwd=tmp_path, resolve_paths=False).values['uri'] == 'out/data'
    with pytest.raises(ParamError, match="parameter 'uri' expects a URI"):
        bind(ep, {'uri': ''}, cwd=tmp_path)


# ------------------------------------------------------------------------------------------
# case 2: invalid typed defaults

NONE_DEFAULTS = ('entry_points:\n  main:\n    parameters:\n      seed: {type: int, default: None}\n'
                 '      lr: {type: float, default: None}\n    command: "echo {seed} {lr}"\n')


@pytest.fixture
def none_defaults(tmp_path) -> Path:
    return write(tmp_path / 'p', {'MLproject': NONE_DEFAULTS})


def test_invalid_default_is_passed_as_given_with_a_warning(none_defaults, tmp_path):
    project = load_project(none_defaults)
    assert [(f.rule, f.line) for f in project.run_warnings()] == [('MLP006', 4), ('MLP006', 5)]
    ep = project.get_entry_point('main')
    bound = bind(ep, {}, cwd=tmp_path)
    assert bound.values == {'seed': 'None', 'lr': 'None'}  # what the program gets under MLflow
    assert build_command(ep, bound) == 'echo None None'


def test_a_given_value_just_works_even_with_strict(none_defaults, tmp_path):
    project = load_project(none_defaults, refuse_lint_errors=True)  # --strict does not refuse at load
    ep = project.get_entry_point('main')
    bound = bind(ep, {'seed': '3', 'lr': '0.5'}, cwd=tmp_path, strict=True)
    assert bound.values == {'seed': '3', 'lr': '0.5'}
    # and the given value is still checked against its type
    with pytest.raises(ParamError, match="parameter 'seed' expects an int"):
        bind(ep, {'seed': 'abc', 'lr': '0.5'}, cwd=tmp_path)


def test_strict_refuses_an_invalid_default_only_when_it_is_used(none_defaults, tmp_path):
    ep = load_project(none_defaults).get_entry_point('main')
    with pytest.raises(ParamError, match="MLP006 default 'None' of parameter 'lr' is not a valid float"):
        bind(ep, {'seed': '3'}, cwd=tmp_path, strict=True)


@pytest.mark.slow  # mlproj as a subprocess
def test_cli_run_with_invalid_defaults(none_defaults, tmp_path, store):
    from tests.helpers.compat import mlproj, runs

    r = mlproj('run', str(none_defaults), '-P', 'seed=3', '--env-manager', 'local', '--tracking-uri', store,
               cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert '3 None' in r.stdout
    assert "MLP006 default 'None' of parameter 'lr' is not a valid float" in r.stderr
    (run,) = runs(store)
    assert run.info.status == 'FINISHED' and run.data.params == {'seed': '3', 'lr': 'None'}
    r = mlproj('run', str(none_defaults), '-P', 'seed=3', '--strict', '--env-manager', 'local',
               '--tracking-uri', store, cwd=tmp_path)
    assert r.returncode == 66 and r.stderr.strip().splitlines()[-1].startswith(
        "mlproj: error: MLP006 default 'None' of parameter 'lr' is not a valid float")
    assert len(runs(store)) == 1  # refused before any run exists
    r = mlproj('run', str(none_defaults), '-P', 'seed=3', '-P', 'lr=0.1', '--strict', '--env-manager', 'local',
               '--tracking-uri', store, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert '3 0.1' in r.stdout
    assert os.path.isdir(tmp_path / 'mlruns')
