"""Per-entry-point environments (mlproj only): parsing and positions, the run plan, `mlproj show`.

The environments actually built for two steps are tested in tests/envs/test_entry_point_envs.py.
"""
from __future__ import annotations

import json

import pytest

from mlproj.cli import main
from mlproj.errors import SpecError
from mlproj.request import RunRequest
from mlproj.runner import plan
from mlproj.spec import EnvSpec, load_project
from tests.helpers import write_project
from tests.helpers.git import git

TWO_STEPS = """\
name: steps
python_env: python_env.yaml
entry_points:
  prepare:
    python_env: envs/prepare.yaml
    command: "python prepare.py"
  train:
    docker_env:
      image: python:3.12-slim
    command: "python train.py"
  report:
    command: "python report.py"
"""
ENV = 'python: "3.11"\ndependencies: []\n'


@pytest.fixture
def steps(tmp_path):
    return write_project(tmp_path / 'steps', TWO_STEPS, {'python_env.yaml': ENV, 'envs/prepare.yaml': ENV})


def test_entry_point_env_is_parsed_and_overrides_the_projects(steps):
    project = load_project(steps)
    assert project.findings == ()  # the keys are known: no MLP004 under `mlproj run`
    assert project.env == EnvSpec('python', steps / 'python_env.yaml', None, True)
    prepare, train, report = (project.entry_points[n] for n in ('prepare', 'train', 'report'))
    assert prepare.env == EnvSpec('python', steps / 'envs' / 'prepare.yaml', None, True)
    assert train.env.kind == 'docker' and train.env.docker.image == 'python:3.12-slim'
    assert report.env is None
    assert project.for_entry_point(prepare).env == prepare.env
    assert project.for_entry_point('train').env == train.env
    assert project.for_entry_point(report) is project
    assert project.for_entry_point('report.py') is project  # not declared: the project's
    assert [name for name, _ in project.environments()] == [None, 'prepare', 'train']
    # the copy is the same project otherwise
    copy = project.for_entry_point(prepare)
    assert (copy.directory, copy.entry_points, copy.root) == (project.directory, project.entry_points, project.root)


def test_entry_point_without_env_of_a_project_without_env_file(tmp_path):
    write_project(tmp_path, 'entry_points:\n  a:\n    python_env: a.yaml\n    command: "true"\n'
                  '  b:\n    command: "true"\n', {'a.yaml': ENV})
    project = load_project(tmp_path)
    assert project.env.kind == 'none'
    assert project.for_entry_point('a').env.path == tmp_path / 'a.yaml'
    assert project.for_entry_point('b').env.kind == 'none'


def test_entry_point_env_is_not_a_convention_file(tmp_path):
    # a python_env.yaml next to the MLproject is the project's env by convention; an entry point
    # has an env only when it declares one
    write_project(tmp_path, 'entry_points:\n  a:\n    command: "true"\n', {'python_env.yaml': ENV})
    project = load_project(tmp_path)
    assert project.env.kind == 'python' and not project.env.declared
    assert project.entry_points['a'].env is None


@pytest.mark.parametrize('body,rule,pos,words', [
    ('    python_env: missing.yaml\n', 'MLP011', (4, 17), "entry_points.a.python_env file 'missing.yaml' does not"),
    ('    conda_env: /etc/conda.yaml\n', 'MLP027', (4, 16), 'entry_points.a.conda_env'),
    ('    python_env: [a]\n', 'MLP003', (4, 17), 'entry_points.a.python_env must be a path string'),
    ('    python_env: p.yaml\n    conda_env: p.yaml\n', 'MLP007',
     (5, 5), "only one environment may be declared in entry point 'a', found: python_env, conda_env"),
    ('    docker_env: {volumes: [x]}\n', 'MLP008', (4, 17), 'entry_points.a.docker_env needs an image'),
    ('    docker_env: {image: x, volumes: x}\n', 'MLP009', (4, 37), 'entry_points.a.docker_env.volumes'),
    ('    docker_env: {image: x, environment: [[]]}\n', 'MLP010', (4, 42), 'entry_points.a.docker_env.environment'),
    ('    docker_env: {image: x, imgae: y}\n', 'MLP004', (4, 28), "unknown key 'imgae' in entry_points.a.docker_env"),
])
def test_entry_point_env_errors_are_the_top_level_ones_with_positions(tmp_path, body, rule, pos, words):
    write_project(tmp_path, 'name: n\nentry_points:\n  a:\n' + body + '    command: "true"\n', {'p.yaml': ENV})
    project = load_project(tmp_path, strict=False)
    (finding,) = [f for f in project.findings if f.rule == rule]
    assert (finding.line, finding.col) == pos
    assert words in finding.message
    if finding.severity == 'error':
        with pytest.raises(SpecError, match=rule):
            load_project(tmp_path)


def test_entry_point_env_file_may_live_in_the_repository_root(tmp_path):
    git('init', '-q', str(tmp_path))
    (tmp_path / 'shared.yaml').write_text(ENV)
    write_project(tmp_path / 'proj', 'entry_points:\n  a:\n    python_env: ../shared.yaml\n    command: "true"\n')
    project = load_project(tmp_path / 'proj')  # MLP026: a warning, as for the top-level key
    assert [f.rule for f in project.findings] == ['MLP026']
    assert project.entry_points['a'].env.path == tmp_path / 'shared.yaml'
    with pytest.raises(SpecError, match='MLP026'):
        load_project(tmp_path / 'proj', refuse_lint_errors=True)
    write_project(tmp_path / 'proj', 'entry_points:\n  a:\n    python_env: ../../out.yaml\n    command: "true"\n')
    with pytest.raises(SpecError, match='MLP027'):
        load_project(tmp_path / 'proj')


def _plan(uri, entry_point: str):
    p = plan(RunRequest(uri=str(uri), entry_point=entry_point, dry_run=True, env_manager='local'))
    p.source.cleanup()
    return p


def test_plan_uses_the_entry_points_env(steps):
    p = _plan(steps, 'prepare')
    assert p.project.env.path == steps / 'envs' / 'prepare.yaml'
    assert p.as_dict()['environment'] == {'kind': 'python', 'file': str(steps / 'envs' / 'prepare.yaml'),
                                          'docker_image': None, 'entry_point_env': True}
    p = _plan(steps, 'report')
    assert p.project.env.path == steps / 'python_env.yaml'
    assert p.as_dict()['environment']['entry_point_env'] is False
    # docker_env always runs in docker, as a top-level docker_env does
    assert plan(RunRequest(uri=str(steps), entry_point='train', dry_run=True)).env_manager == 'docker'


def test_dry_run_prints_the_environment(steps, capsys):
    assert main(['run', str(steps), '-e', 'prepare', '--env-manager', 'local', '--dry-run']) == 0
    out = capsys.readouterr().out
    assert f"environment: python ({steps / 'envs' / 'prepare.yaml'}) (the entry point's own)" in out
    assert main(['run', str(steps), '-e', 'report', '--env-manager', 'local', '--dry-run', '--json']) == 0
    assert json.loads(capsys.readouterr().out)['environment']['file'] == str(steps / 'python_env.yaml')


def test_show_lists_entry_point_envs_that_differ(steps, capsys):
    # an entry point whose env is the project's own is not listed as different
    (steps / 'MLproject').write_text(TWO_STEPS + '  same:\n    python_env: python_env.yaml\n    command: "true"\n')
    assert main(['show', str(steps), '--json']) == 0
    info = json.loads(capsys.readouterr().out)
    eps = info['entry_points']
    assert info['environment']['file'] == str(steps / 'python_env.yaml')
    assert eps['prepare']['environment'] == {'kind': 'python', 'file': str(steps / 'envs' / 'prepare.yaml'),
                                             'docker_image': None, 'env_manager': 'uv'}
    assert eps['train']['environment'] == {'kind': 'docker', 'file': None, 'docker_image': 'python:3.12-slim',
                                           'env_manager': 'docker'}
    assert eps['report']['environment'] is None and eps['same']['environment'] is None
    assert main(['show', str(steps)]) == 0
    out = capsys.readouterr().out
    assert f"  environment: python ({steps / 'envs' / 'prepare.yaml'}), env manager uv (its own; mlflow run uses " \
           "the project's)" \
        in out
    assert "  environment: docker (python:3.12-slim), env manager docker (its own" in out
    assert out.count('  environment:') == 2
