"""Plain Git hooks: `mlproj hooks install` and real `git commit` / `git push` to a local bare remote."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mlproj.lint.githooks import render
from tests.helpers import REPO
from tests.helpers.git import run_git
from tests.helpers.lint import run_cli

pytestmark = pytest.mark.slow  # real git commits and pushes through the installed hooks

GOOD = 'name: p\nentry_points:\n  main:\n    parameters: {n: int, f: {type: float, default: 0.5}}\n' \
       '    command: "echo {n} {f}"\n'
BAD = 'entry_points:\n  main:\n    command: "echo {nope}"\n'


def git(args, cwd, check=True):
    return run_git(*args, cwd=cwd, check=check)


@pytest.fixture
def repo(tmp_path, git_env):
    remote = tmp_path / 'remote.git'
    git(['init', '-q', '--bare', str(remote)], tmp_path)
    work = tmp_path / 'work'
    work.mkdir()
    git(['init', '-q', '-b', 'main'], work)
    git(['remote', 'add', 'origin', str(remote)], work)
    (work / 'README').write_text('x\n')
    git(['add', 'README'], work)
    git(['commit', '-q', '-m', 'init'], work)
    return work


def test_shipped_scripts_are_the_rendered_templates():
    for hook in ('pre-commit', 'pre-push'):
        path = REPO / 'hooks' / hook
        assert path.read_text() == render(hook)
        assert os.access(path, os.X_OK)
        assert subprocess.run(['sh', '-n', str(path)]).returncode == 0


def test_install_writes_executable_hooks(repo):
    r = run_cli(['hooks', 'install', '--pre-push'], repo)
    assert r.code == 0, r.err
    for hook in ('pre-commit', 'pre-push'):
        path = repo / '.git' / 'hooks' / hook
        assert path.read_text() == render(hook, sys.executable) and os.access(path, os.X_OK)
    assert 'installed pre-commit hook' in r.out
    again = run_cli(['hooks', 'install', '--pre-push'], repo)
    assert again.code == 0 and 'unchanged pre-commit hook' in again.out


def test_install_honours_core_hooks_path(repo):
    git(['config', 'core.hooksPath', '.githooks'], repo)
    (repo / 'sub').mkdir()
    assert run_cli(['hooks', 'install'], repo / 'sub').code == 0
    assert (repo / '.githooks' / 'pre-commit').exists()
    assert not (repo / '.git' / 'hooks' / 'pre-commit').exists()


def test_never_overwrites_without_force(repo):
    hooks = repo / '.git' / 'hooks'
    (hooks / 'pre-push').write_text('#!/bin/sh\necho mine\n')
    r = run_cli(['hooks', 'install', '--pre-push'], repo)
    assert r.code == 64 and 'already installed' in r.err and '--force' in r.err
    assert not (hooks / 'pre-commit').exists()  # nothing written when one hook is in the way
    assert (hooks / 'pre-push').read_text() == '#!/bin/sh\necho mine\n'
    r = run_cli(['hooks', 'install', '--pre-push', '--force'], repo)
    assert r.code == 0 and 'replaced pre-push hook' in r.out
    assert (hooks / 'pre-push.mlproj-backup').read_text() == '#!/bin/sh\necho mine\n'
    assert (hooks / 'pre-push').read_text() == render('pre-push', sys.executable)


def test_outside_a_repository(tmp_path):
    r = run_cli(['hooks', 'install'], tmp_path)
    assert r.code == 67 and 'not inside a Git work tree' in r.err


def test_pre_commit_hook_blocks_a_bad_staged_mlproject(repo):
    assert run_cli(['hooks', 'install'], repo).code == 0
    (repo / 'proj').mkdir()
    (repo / 'proj' / 'MLproject').write_text(GOOD)
    git(['add', 'proj'], repo)
    assert git(['commit', '-q', '-m', 'good'], repo).returncode == 0
    (repo / 'proj' / 'MLproject').write_text(BAD)
    git(['add', 'proj'], repo)
    (repo / 'proj' / 'MLproject').write_text(GOOD + '# fixed\n')  # fixed in the work tree but not staged
    bad = git(['commit', '-q', '-m', 'bad'], repo, check=False)
    assert bad.returncode == 1
    assert "proj/MLproject:3:20: MLP012 error: command of entry point 'main' uses {nope}" in bad.stdout + bad.stderr  # git sends hook output to stderr
    assert git(['rev-list', '--count', 'HEAD'], repo).stdout.strip() == '2'
    git(['add', 'proj'], repo)
    assert git(['commit', '-q', '-m', 'fixed'], repo).returncode == 0


def test_pre_commit_hook_checks_a_staged_env_file_alone(repo):
    """Staging only a broken python_env.yaml fails the commit (git hook and `mlproj hooks run pre-commit`)."""
    assert run_cli(['hooks', 'install'], repo).code == 0
    (repo / 'proj').mkdir()
    (repo / 'proj' / 'MLproject').write_text('name: e\nentry_points:\n  main:\n    command: "true"\n')
    (repo / 'proj' / 'python_env.yaml').write_text('python: "3.10"\n')  # used by convention (no env key)
    git(['add', 'proj'], repo)
    assert git(['commit', '-q', '-m', 'good'], repo).returncode == 0
    (repo / 'proj' / 'python_env.yaml').write_text('python: 3.10\n')
    git(['add', 'proj/python_env.yaml'], repo)
    r = run_cli(['hooks', 'run', 'pre-commit'], repo)
    assert r.code == 1 and 'proj/python_env.yaml:1:9: MLP017 error: python must be a string' in r.out, r
    bad = git(['commit', '-q', '-m', 'bad env'], repo, check=False)
    assert bad.returncode == 1 and 'MLP017' in bad.stdout + bad.stderr
    (repo / 'proj' / 'python_env.yaml').write_text('python: "3.11"\n')
    git(['add', 'proj/python_env.yaml'], repo)
    assert git(['commit', '-q', '-m', 'fixed env'], repo).returncode == 0


def test_pre_commit_hook_ignores_other_files(repo):
    assert run_cli(['hooks', 'install'], repo).code == 0
    (repo / 'notes.txt').write_text('{nope}\n')
    git(['add', 'notes.txt'], repo)
    assert git(['commit', '-q', '-m', 'notes'], repo).returncode == 0


def test_pre_push_dry_runs_changed_projects(repo, tmp_path):
    assert run_cli(['hooks', 'install', '--pre-push'], repo).code == 0
    for name in ('a', 'b'):
        (repo / name).mkdir()
        (repo / name / 'MLproject').write_text(GOOD)
    git(['add', '.'], repo)
    git(['commit', '-q', '-m', 'two projects'], repo)
    push = git(['push', 'origin', 'main'], repo, check=False)
    assert push.returncode == 0, push.stderr
    assert 'ok    a -e main (placeholder values: n=0)' in push.stdout + push.stderr
    assert 'ok    b -e main' in push.stdout + push.stderr
    # a change to project b only: b is dry-run, a is not
    (repo / 'b' / 'MLproject').write_text(BAD)
    git(['commit', '-q', '--no-verify', '-am', 'break b'], repo)  # past the pre-commit hook
    before = git(['rev-parse', 'main'], tmp_path / 'remote.git').stdout
    push = git(['push', 'origin', 'main'], repo, check=False)
    assert push.returncode != 0
    assert 'FAIL  b: MLP012' in push.stdout + push.stderr and ' a ' not in push.stdout + push.stderr
    assert git(['rev-parse', 'main'], tmp_path / 'remote.git').stdout == before  # nothing was pushed
    # the pushed commit is checked, not the work tree
    (repo / 'b' / 'MLproject').write_text(GOOD + '# v2\n')
    assert git(['push', 'origin', 'main'], repo, check=False).returncode != 0
    git(['commit', '-q', '-am', 'fix b'], repo)
    push = git(['push', 'origin', 'main'], repo, check=False)
    assert push.returncode == 0 and 'ok    b -e main' in push.stdout + push.stderr
