"""``mlproj.source.gitstate`` answers exactly what pygit2 answers, or defers to it.

Every step changes the work tree or the repository the way a user does, then compares
``git_info`` (remembered state where it applies) with a fresh pygit2 reading.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlproj.source import gitstate, local
from tests.helpers.git import git, git_env


def truth(path: Path) -> dict:
    """What pygit2 says, with nothing remembered."""
    import pygit2

    repo = pygit2.Repository(pygit2.discover_repository(str(path)))
    dirty = bool(repo.status(untracked_files='no'))
    return {'root': Path(repo.workdir).resolve(), 'commit': str(repo.head.target),
            'branch': None if repo.head_is_detached else repo.head.shorthand,
            'repo_url': local._remote_url(repo), 'dirty': dirty}


def answer(path: Path) -> dict:
    info = local.git_info(path)
    assert info is not None
    return {'root': Path(info['root']).resolve(), 'commit': info['commit'], 'branch': info['branch'],
            'repo_url': info['repo_url'], 'dirty': info['dirty']}


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.setattr(gitstate, 'RACY_SECONDS', 0.0)  # the tests' files are seconds old at most
    home = tmp_path / 'home'
    home.mkdir(exist_ok=True)
    monkeypatch.setenv('HOME', str(home))  # the user's Git config is part of the signature
    root = tmp_path / 'proj'
    root.mkdir()
    git('init', '-q', str(root), home=home)
    (root / 'MLproject').write_text('name: t\nentry_points:\n  main:\n    command: "python -c pass"\n')
    (root / 'src').mkdir()
    (root / 'src' / 'train.py').write_text('print(1)\n')
    git('add', '.', cwd=root, home=home)
    git('commit', '-qm', 'one', cwd=root, home=home)
    return root, home


def step(root: Path, *, expect_hit: bool) -> dict:
    """Compare with pygit2; ``expect_hit`` says whether the remembered state must answer."""
    hit = gitstate.lookup(root / 'src')
    assert (hit is not None) == expect_hit
    got, want = answer(root / 'src'), truth(root / 'src')
    assert got == want
    return got


def test_matches_pygit2_through_a_users_day(repo):
    root, home = repo
    first = step(root, expect_hit=False)
    assert first['dirty'] is False
    step(root, expect_hit=True)                      # remembered: pygit2's answer without pygit2

    (root / 'src' / 'train.py').write_text('print(2)\n')  # same size, new content
    assert step(root, expect_hit=False)['dirty'] is True
    assert gitstate.lookup(root) is None             # a dirty tree is never remembered

    (root / 'src' / 'train.py').write_text('print(1)\n')  # reverted: clean again by content
    assert step(root, expect_hit=False)['dirty'] is False
    step(root, expect_hit=True)

    os.utime(root / 'MLproject')                     # touched only
    assert step(root, expect_hit=False)['dirty'] is False
    step(root, expect_hit=True)

    (root / 'notes.txt').write_text('untracked\n')   # untracked files do not count
    assert step(root, expect_hit=True)['dirty'] is False

    (root / 'data.csv').write_text('a\n1\n')
    git('add', 'data.csv', cwd=root, home=home)      # staged: the index changed
    assert step(root, expect_hit=False)['dirty'] is True

    git('commit', '-qm', 'two', cwd=root, home=home)  # a new commit
    after = step(root, expect_hit=False)
    assert after['commit'] != first['commit'] and after['dirty'] is False
    assert step(root, expect_hit=True)['commit'] == after['commit']

    git('checkout', '-q', '-b', 'feature', cwd=root, home=home)  # same commit, another branch
    assert step(root, expect_hit=False)['branch'] == 'feature'
    step(root, expect_hit=True)

    git('checkout', '-q', '--detach', cwd=root, home=home)
    assert step(root, expect_hit=False)['branch'] is None
    step(root, expect_hit=True)
    git('checkout', '-q', 'feature', cwd=root, home=home)
    step(root, expect_hit=False)

    git('remote', 'add', 'origin', 'https://example.com/team/proj.git', cwd=root, home=home)  # config
    assert step(root, expect_hit=False)['repo_url'] == 'https://example.com/team/proj.git'
    step(root, expect_hit=True)

    git('pack-refs', '--all', cwd=root, home=home)   # the branch moves into packed-refs
    step(root, expect_hit=False)
    step(root, expect_hit=True)

    (home / '.gitconfig').write_text('[core]\n\tfilemode = false\n')  # the user's config
    step(root, expect_hit=False)
    (home / '.gitconfig').unlink()
    step(root, expect_hit=False)
    step(root, expect_hit=True)

    os.chmod(root / 'src' / 'train.py', 0o755)       # mode change
    assert step(root, expect_hit=False)['dirty'] is True
    os.chmod(root / 'src' / 'train.py', 0o644)
    step(root, expect_hit=False)

    (root / 'src' / 'train.py').unlink()             # a deleted tracked file
    assert step(root, expect_hit=False)['dirty'] is True


def test_racily_fresh_files_are_not_remembered(repo, monkeypatch):
    root, _ = repo
    monkeypatch.setattr(gitstate, 'RACY_SECONDS', 3600.0)
    assert answer(root)['dirty'] is False
    assert gitstate.lookup(root) is None


@pytest.mark.parametrize('variable', ['GIT_DIR', 'GIT_INDEX_FILE', 'GIT_WORK_TREE', 'GIT_CONFIG_GLOBAL'])
def test_location_variables_defer_to_pygit2(repo, monkeypatch, variable):
    root, _ = repo
    answer(root)
    assert gitstate.lookup(root) is not None
    monkeypatch.setenv(variable, str(root / '.git'))
    assert gitstate.lookup(root) is None


def test_unrelated_git_variables_keep_the_fast_path(repo, monkeypatch):
    root, _ = repo
    answer(root)
    monkeypatch.setenv('GIT_SSL_CAINFO', '/etc/ssl/certs/ca-certificates.crt')
    monkeypatch.setenv('GIT_TERMINAL_PROMPT', '0')
    assert gitstate.lookup(root) is not None


def test_never_remembered_with_submodules_or_linked_worktrees(repo, tmp_path):
    root, home = repo
    other = tmp_path / 'lib'
    git('init', '-q', str(other), home=home)
    (other / 'x.py').write_text('x = 1\n')
    git('add', '.', cwd=other, home=home)
    git('commit', '-qm', 'lib', cwd=other, home=home)
    git('submodule', 'add', '-q', str(other), 'lib', cwd=root, home=home)
    git('commit', '-qm', 'with lib', cwd=root, home=home)
    assert answer(root) == truth(root)
    assert gitstate.lookup(root) is None             # a submodule: pygit2 every time

    linked = tmp_path / 'linked'
    git('worktree', 'add', '-q', '--detach', str(linked), cwd=root, home=home)
    assert answer(linked) == truth(linked)
    assert gitstate.lookup(linked) is None           # .git is a file there


def test_a_git_dir_owned_by_someone_else_defers(repo):
    root, _ = repo
    answer(root)
    assert gitstate.lookup(root) is not None
    if os.geteuid() != 0:
        pytest.fail('this machine runs the tests as root (chown needed)')
    os.chown(root / '.git', 12345, 12345)
    try:
        assert gitstate.lookup(root) is None
    finally:
        os.chown(root / '.git', 0, 0)


def test_corrupt_or_foreign_entries_are_ignored(repo):
    root, _ = repo
    answer(root)
    entry = gitstate._entry_path(root.resolve())
    for text in ('{', '[]', '{"format": 999}', '{"format": 1, "root": "/elsewhere"}', 'x' * 10):
        entry.write_text(text)
        assert gitstate.lookup(root) is None
        assert answer(root) == truth(root)


def test_a_remembered_run_path_does_not_load_pygit2(repo):
    """End to end in fresh interpreters: the first resolve remembers, the second needs no pygit2."""
    root, home = repo
    env = {k: v for k, v in git_env(home).items() if not k.startswith('GIT_')}
    env['PYTHONPATH'] = str(Path(__file__).resolve().parents[2])
    code = ('import sys; from mlproj.source import gitstate; gitstate.RACY_SECONDS = float(sys.argv[2]); '
            'from mlproj.source.uri import parse; from mlproj.source.local import resolve_local; '
            's = resolve_local(parse(sys.argv[1]), None); '
            'print(s.commit, s.dirty, "pygit2" in sys.modules)')
    first = subprocess.run([sys.executable, '-c', code, str(root), '0'], env=env, capture_output=True, text=True)
    second = subprocess.run([sys.executable, '-c', code, str(root), '2'], env=env, capture_output=True, text=True)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    commit = truth(root)['commit']
    assert first.stdout.split() == [commit, 'False', 'True']
    assert second.stdout.split() == [commit, 'False', 'False']
