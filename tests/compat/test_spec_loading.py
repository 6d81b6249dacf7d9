"""Spec loading as MLflow's ``tests/projects`` exercise it, plus the files MLflow runs that mlproj
used to refuse (issue 13, cases 1, 3, 4): env files above the project inside the same repository,
unknown parameter types, duplicate keys.  ``mlproj lint`` still reports each with id and position.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from mlproj.errors import SpecError
from mlproj.lint import lint_paths, load_config
from mlproj.spec import load_project
from tests.helpers.compat import write
from tests.helpers.git import commit_all, git


def lint(directory: Path) -> list[str]:
    result = lint_paths([str(directory)], load_config(None))
    return [f'{os.path.basename(i.finding.path)}:{i.finding.line}:{i.finding.col} {i.rule} {i.severity}'
            for i in result.issues]


# ------------------------------------------------------------------------------------------
# MLflow's spec scenarios


def test_greeter_entry_point_parses(example_project):
    ep = load_project(example_project).get_entry_point('greeter')
    assert ep.command == 'python greeter.py {greeting} {name}'
    name, greeting = ep.parameters['name'], ep.parameters['greeting']
    assert (name.type, name.default, name.required) == ('string', None, True)
    assert (greeting.type, greeting.default, greeting.required) == ('string', 'hi', False)


def test_script_entry_points(tmp_path, monkeypatch):
    write(tmp_path, {'my_script.py': 'print(1)\n', 'my_script.sh': 'echo 1\n', 'my_program.scala': '\n'})
    monkeypatch.setenv('SHELL', '/bin/bash')
    project = load_project(tmp_path)
    assert project.get_entry_point('my_script.py').command == 'python my_script.py'
    assert project.get_entry_point('my_script.sh').command == f'{shlex.quote("/bin/bash")} my_script.sh'
    with pytest.raises(SpecError, match="unknown entry point 'my_program.scala'"):
        project.get_entry_point('my_program.scala')


@pytest.mark.parametrize('files,kind,env_file', [
    ({}, 'none', None),
    ({'MLproject': 'key: value\n', 'conda.yaml': 'dependencies: [python=3.11]\n'}, 'conda', 'conda.yaml'),
    ({'mlproject': 'conda_env: some-env.yaml\n', 'some-env.yaml': 'dependencies: [python=3.11]\n'}, 'conda',
     'some-env.yaml'),
    ({'MLproject': 'python_env: python_env.yaml\n', 'python_env.yaml': 'python: "3.11"\n'}, 'python',
     'python_env.yaml'),
    ({'MLproject': 'docker_env: {image: some-image}\nname: d\n'}, 'docker', None),
])
def test_load_matrix(tmp_path, files, kind, env_file):
    project = load_project(write(tmp_path, files))
    assert project.env.kind == kind
    assert project.env.path == (tmp_path / env_file if env_file else None)
    if kind == 'docker':
        assert project.env.docker.image == 'some-image'
    if files and 'conda.yaml' in files:  # the file is untouched by loading
        assert (tmp_path / 'conda.yaml').read_text() == files['conda.yaml']


@pytest.mark.parametrize('text,message', [
    ('docker_env: {image: x}\nconda_env: c.yaml\n', 'MLP007 only one environment may be declared'),
    ('docker_env: {volumes: [a]}\n', 'MLP008 docker_env needs an image'),
])
def test_invalid_specs_are_refused_as_in_mlflow(tmp_path, text, message):
    write(tmp_path, {'MLproject': text, 'c.yaml': 'dependencies: []\n'})
    with pytest.raises(SpecError, match=message):
        load_project(tmp_path)


# ------------------------------------------------------------------------------------------
# case 1: env files above the project, inside the repository (monorepos)


@pytest.fixture
def monorepo(tmp_path) -> Path:
    repo = tmp_path / 'mono'
    write(repo, {
        'python_env.yaml': 'python: "3.11"\ndependencies: [numpy]\n',
        'envs/environment.yaml': 'dependencies: [python=3.11, pip]\n',
        'projects/a/MLproject': 'name: a\npython_env: ../../python_env.yaml\nentry_points:\n  main: {command: "true"}\n',
        'projects/b/deeper/MLproject': 'name: b\nconda_env: ../../../envs/environment.yaml\n'
                                       'entry_points:\n  main: {command: "true"}\n',
        'projects/c/MLproject': 'name: c\npython_env: ../python_env.yaml\nentry_points:\n  main: {command: "true"}\n',
        'projects/python_env.yaml': 'python: "3.11"\n',
    })
    git('init', '-q', '-b', 'main', cwd=repo)
    commit_all(repo)
    return repo


@pytest.mark.parametrize('sub,kind,target', [
    ('projects/a', 'python', 'python_env.yaml'),
    ('projects/b/deeper', 'conda', 'envs/environment.yaml'),
    ('projects/c', 'python', 'projects/python_env.yaml'),
])
def test_env_file_above_the_project_inside_the_repository_runs(monorepo, sub, kind, target):
    project = load_project(monorepo / sub)  # root: the enclosing Git work tree
    assert project.env.kind == kind and project.env.path == monorepo / target
    assert [f.rule for f in project.findings] == ['MLP026']
    assert project.refused() == []
    with pytest.raises(SpecError, match='MLP026'):
        load_project(monorepo / sub, refuse_lint_errors=True)  # mlproj run --strict
    # lint keeps reporting it, with position
    col = len(f'{kind}_env: ') + 1
    assert lint(monorepo / sub) == [f'MLproject:2:{col} MLP026 error']


def test_env_file_beyond_the_root_is_refused(monorepo):
    # the checkout root given by the source layer wins over any enclosing repository
    with pytest.raises(SpecError, match=r"MLP027 python_env '../../python_env.yaml' points outside the repository"):
        load_project(monorepo / 'projects/a', root=monorepo / 'projects')
    write(monorepo, {'projects/d/MLproject': 'python_env: ../../../outside.yaml\n'})
    (monorepo.parent / 'outside.yaml').write_text('python: "3.11"\n')
    with pytest.raises(SpecError, match='MLP027'):
        load_project(monorepo / 'projects/d')
    write(monorepo, {'projects/e/MLproject': f'python_env: {monorepo.parent / "outside.yaml"}\n'})
    with pytest.raises(SpecError, match='MLP027'):
        load_project(monorepo / 'projects/e')


def test_env_file_through_a_symlink_leaving_the_root_is_refused(monorepo, tmp_path):
    outside = tmp_path / 'elsewhere'
    write(outside, {'python_env.yaml': 'python: "3.11"\n'})
    os.symlink(outside, monorepo / 'linked')          # a directory component leaving the root
    os.symlink(outside / 'python_env.yaml', monorepo / 'env-link.yaml')  # the file itself
    for value in ('../../linked/python_env.yaml', '../../env-link.yaml'):
        write(monorepo, {'projects/s/MLproject': f'python_env: {value}\n'})
        with pytest.raises(SpecError, match='MLP027'):
            load_project(monorepo / 'projects/s')
    # a symlink that stays inside the root is fine
    os.symlink('python_env.yaml', monorepo / 'inside-link.yaml')
    write(monorepo, {'projects/s/MLproject': 'python_env: ../../inside-link.yaml\n'})
    assert load_project(monorepo / 'projects/s').env.path == monorepo / 'inside-link.yaml'


def test_plain_directory_is_its_own_root(tmp_path):
    # no Git repository: the directory given is the root, so the parent folder is outside it
    write(tmp_path, {'python_env.yaml': 'python: "3.11"\n', 'p/MLproject': 'python_env: ../python_env.yaml\n'})
    with pytest.raises(SpecError, match='MLP027'):
        load_project(tmp_path / 'p')
    # ... unless the source is the parent (`mlproj run DIR#p`): the runner passes that root
    assert load_project(tmp_path / 'p', root=tmp_path).env.path == tmp_path / 'python_env.yaml'


# ------------------------------------------------------------------------------------------
# cases 3 and 4: unknown types, duplicate keys


def test_unknown_types_are_strings_with_a_warning(tmp_path):
    write(tmp_path, {'MLproject': 'entry_points:\n  main:\n    parameters:\n      ids: {type: "list[int]", '
                                  'default: "[1, 2]"}\n      names: list[str]\n    command: "echo {ids} {names}"\n'})
    project = load_project(tmp_path)
    params = project.get_entry_point('main').parameters
    assert (params['ids'].type, params['names'].type) == ('string', 'string')
    assert [(f.rule, f.line) for f in project.run_warnings()] == [('MLP005', 4), ('MLP005', 5)]
    with pytest.raises(SpecError, match="MLP005 parameter 'ids' has unknown type 'list\\[int\\]'"):
        load_project(tmp_path, refuse_lint_errors=True)
    assert lint(tmp_path) == ['MLproject:4:19 MLP005 error', 'MLproject:5:14 MLP005 error']


def test_duplicate_keys_last_value_wins_with_a_warning(tmp_path):
    write(tmp_path, {'MLproject': 'name: dup\nentry_points:\n  main:\n    command: "echo first"\n'
                                  '    command: "echo second"\n  other:\n    command: "true"\n'})
    project = load_project(tmp_path)
    assert project.get_entry_point('main').command == 'echo second'  # as PyYAML, so as MLflow
    assert project.get_entry_point('other').command == 'true'  # the rest of the file is usable
    (warning,) = project.run_warnings()
    assert (warning.rule, warning.line, warning.col) == ('MLP002', 5, 5)
    assert 'first defined at line 4' in warning.message
    with pytest.raises(SpecError, match='MLP002'):
        load_project(tmp_path, refuse_lint_errors=True)
    assert lint(tmp_path) == ['MLproject:5:5 MLP002 error']


def test_strict_refuses_an_entry_point_without_command_whichever_runs(tmp_path):
    write(tmp_path, {'MLproject': 'entry_points:\n  main: {command: "true"}\n  broken: {}\n'})
    assert load_project(tmp_path).get_entry_point('main').command == 'true'  # as MLflow
    with pytest.raises(SpecError, match="MLP014 entry point 'broken' has no command"):
        load_project(tmp_path, refuse_lint_errors=True)
