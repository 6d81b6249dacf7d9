"""``mlproj run`` end to end as MLflow's ``tests/projects`` run projects (entry points, subdirectories,
tags of a local Git repository), the source documents' commands verbatim (issue 13, case 9), and
``--strict`` against what run accepts (cases 1-4) as real subprocesses with a real file store.
"""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from tests.helpers import REPO
from tests.helpers.compat import mlproj, runs, write
from tests.helpers.git import commit_all, git

pytestmark = pytest.mark.slow  # drives mlproj as a subprocess


def test_help_shows_the_mlflow_spellings_as_aliases():
    from mlproj.commands.run import run

    text = CliRunner().invoke(run, ['--help'], terminal_width=200).output
    assert '-P, --param-list, --param NAME=VALUE' in text and '--param is an alias' in text
    assert '-b, -m, --backend, --mode TEXT' in text and '-m/--mode is an alias' in text
    assert '-c, --backend-config, --cluster-spec FILE|JSON' in text and '--cluster-spec is an alias' in text
    assert '--strict' in text and '--git-username' in text and '--git-password' in text


def test_the_tutorial_command_verbatim(tmp_path):
    # the MLflow Projects tutorial: `mlflow run my_project -e train --param data_path=... --param alpha=0.8`
    shutil.copytree(REPO / 'examples' / 'tutorial', tmp_path / 'my_project')
    r = mlproj('run', 'my_project', '-e', 'train', '--param', 'data_path=./my_project/data.csv', '--param',
               'alpha=0.8', '--dry-run', '--json', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan['parameters'] == {'data_path': './my_project/data.csv', 'alpha': '0.8', 'max_iter': '100'}
    assert plan['command'] == 'python train.py --data_path ./my_project/data.csv --alpha 0.8 --max_iter 100'
    # --param and -P are one option: a repeat across spellings is still a repeat
    r = mlproj('run', 'my_project', '-e', 'train', '--param', 'alpha=1', '-P', 'alpha=2', '--dry-run', cwd=tmp_path)
    assert r.returncode == 64 and "repeated -P parameter 'alpha'" in r.stderr


def test_param_alias_in_a_real_run(example_project, tmp_path, store):
    r = mlproj('run', str(example_project), '-e', 'greeter', '--param', 'name=friend', '--param', 'excitement=2',
               '--env-manager', 'local', '--tracking-uri', store, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'hi friend!!' in r.stdout
    (run,) = runs(store)
    assert run.data.params == {'greeting': 'hi', 'name': 'friend', 'excitement': '2'}


@pytest.mark.parametrize('version', [None, 'master', 'HEAD'])
def test_local_git_repo_run_tags(local_git_repo, tmp_path, store, version):
    if version == 'HEAD':
        version = git('rev-parse', 'HEAD', cwd=local_git_repo)
    args = ['-v', version] if version else []
    r = mlproj('run', str(local_git_repo), '-e', 'test_tracking', '-P', 'use_start_run=1', *args,
               '--env-manager', 'local', '--tracking-uri', store, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (run,) = runs(store)
    assert run.info.status == 'FINISHED'
    assert run.data.params == {'use_start_run': '1'} and run.data.metrics == {'some_key': 3.0}
    tags = run.data.tags
    assert tags['mlflow.source.type'] == 'PROJECT' and 'file:' in tags['mlflow.source.name']
    assert tags['mlflow.project.entryPoint'] == 'test_tracking' and tags['mlflow.project.backend'] == 'local'
    assert tags['mlflow.source.git.commit'] == git('rev-parse', 'HEAD', cwd=local_git_repo)
    if version == 'master':
        assert tags['mlflow.source.git.branch'] == 'master'


def test_subdirectory_of_a_local_git_repo(local_git_repo, tmp_path, store):
    r = mlproj('run', f'{local_git_repo}#example_project', '-e', 'greeter', '-P', 'name=sub', '-v', 'test-branch',
               '--env-manager', 'local', '--tracking-uri', store, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'hi sub' in r.stdout
    (run,) = runs(store)
    assert run.data.tags['mlflow.source.name'].endswith('#example_project')
    r = mlproj('run', f'{local_git_repo}#fake', '--dry-run', cwd=tmp_path)
    assert r.returncode == 67 and 'fake' in r.stderr


def test_monorepo_env_file_above_the_project_runs_and_strict_refuses(tmp_path, store):
    repo = write(tmp_path / 'mono', {
        'python_env.yaml': 'python: "3.11"\ndependencies: []\n',
        'projects/train/MLproject': 'name: t\npython_env: ../../python_env.yaml\nentry_points:\n'
                                    '  main: {command: "echo trained"}\n',
    })
    git('init', '-q', '-b', 'main', cwd=repo)
    commit_all(repo)
    for uri in (str(repo / 'projects/train'), f'{repo}#projects/train'):
        r = mlproj('run', uri, '--env-manager', 'local', '--tracking-uri', store, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert 'trained' in r.stdout
        assert "MLP026 python_env '../../python_env.yaml' lies outside the project directory" in r.stderr
        assert 'mlproj run --strict refuses this' in r.stderr
        r = mlproj('run', uri, '--strict', '--env-manager', 'local', '--tracking-uri', store, cwd=tmp_path)
        assert r.returncode == 65
        assert r.stderr.strip().splitlines()[-1].startswith('mlproj: error: MLP026 python_env')
        assert 'MLproject:2:13' in r.stderr
    assert len(runs(store)) == 2  # --strict refused before creating a run
    # lint reports it with its position, as an error
    r = mlproj('lint', str(repo / 'projects/train'), cwd=tmp_path)
    assert r.returncode == 1 and 'MLproject:2:13: MLP026' in r.stdout


def test_duplicate_key_and_unknown_type_run_as_in_mlflow(tmp_path, store):
    project = write(tmp_path / 'p', {'MLproject': 'entry_points:\n  main:\n    parameters:\n'
                                                  '      ids: {type: "list[int]", default: "[1, 2]"}\n'
                                                  '    command: "echo first {ids}"\n    command: "echo second {ids}"\n'})
    r = mlproj('run', str(project), '--env-manager', 'local', '--tracking-uri', store, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'second [1, 2]' in r.stdout and 'first' not in r.stdout
    assert 'MLP002' in r.stderr and 'MLP005' in r.stderr
    r = mlproj('run', str(project), '--strict', '--dry-run', cwd=tmp_path)
    assert r.returncode == 65 and 'MLP00' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1  # one line, no traceback


def test_monorepo_env_file_from_a_git_checkout(tmp_path):
    # -v exports the commit into a checkout: the checkout root bounds the env file, as the repository did
    repo = write(tmp_path / 'mono', {
        'python_env.yaml': 'python: "3.11"\ndependencies: []\n',
        'projects/train/MLproject': 'name: t\npython_env: ../../python_env.yaml\nentry_points:\n'
                                    '  main: {command: "echo trained"}\n',
        'projects/escape/MLproject': 'name: e\npython_env: ../../../python_env.yaml\nentry_points:\n'
                                     '  main: {command: "true"}\n',
    })
    (tmp_path / 'python_env.yaml').write_text('python: "3.11"\n')  # exists, but outside the repository
    git('init', '-q', '-b', 'main', cwd=repo)
    commit_all(repo)
    for uri in (f'{repo}#projects/train', f'file://{repo}#projects/train'):
        r = mlproj('run', uri, '-v', 'main', '--dry-run', '--json', '--env-manager', 'local', cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert 'MLP026' in r.stderr and json.loads(r.stdout)['command'] == 'echo trained'
    r = mlproj('run', f'{repo}#projects/escape', '-v', 'main', '--dry-run', '--env-manager', 'local', cwd=tmp_path)
    assert r.returncode == 65 and 'MLP027' in r.stderr
