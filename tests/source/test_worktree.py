"""Checkouts are Git working trees (remote via a real git daemon, and ``-v`` on a local repository);
``#subfolder`` checkouts are sparse (cone) with a sparse index; submodule URL policy for remotes."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlproj import source
from mlproj.errors import SourceError
from tests.helpers import run_mlproj
from tests.helpers.git import git, run_git
from tests.helpers.source import assert_worktree, start_daemon, stop, tree_digest

pytestmark = pytest.mark.slow  # a git daemon of its own and mlproj subprocesses


def _g(root: Path, *args: str) -> str:
    return run_git(*args, cwd=root).stdout


@pytest.fixture(scope='module')
def mono(tmp_path_factory):
    """A served monorepo: ``ml/proj`` (project, ``../python_env.yaml`` above it), siblings outside,
    and ``evil`` (a superproject whose submodules point at a local path and a ``file://`` URL)."""
    base = tmp_path_factory.mktemp('mono')
    home = base / 'home'
    home.mkdir()
    srv = base / 'srv'
    srv.mkdir()
    w = base / 'w'
    git('init', '-q', str(w), home=home)
    (w / 'ml' / 'proj').mkdir(parents=True)
    (w / 'ml' / 'python_env.yaml').write_text('python: "3.11"\ndependencies: []\n')
    (w / 'ml' / 'proj' / 'MLproject').write_text('name: p\npython_env: ../python_env.yaml\n'
                                                  'entry_points:\n  main:\n    command: "python -V"\n')
    (w / 'ml' / 'proj' / 'deep' / 'x').mkdir(parents=True)
    (w / 'ml' / 'proj' / 'deep' / 'x' / 'f.txt').write_text('deep\n')
    (w / 'ml' / 'proj' / 'run.sh').write_text('#!/bin/sh\n')
    (w / 'ml' / 'proj' / 'run.sh').chmod(0o755)
    os.symlink('run.sh', w / 'ml' / 'proj' / 'link')
    for d in ('ml/other', 'services/api', 'a-sibling', 'ml/proj-2'):
        (w / d).mkdir(parents=True)
        (w / d / 'file.txt').write_text(d + '\n')
    (w / 'README').write_text('root\n')
    git('add', '-A', cwd=w, home=home)
    git('commit', '-qm', 'mono', cwd=w, home=home)
    git('clone', '-q', '--bare', str(w), str(srv / 'mono.git'), home=home)
    sha = git('rev-parse', 'HEAD', cwd=w, home=home)

    local = base / 'local-leaf.git'     # a repository of "this machine" that a remote must not pull in
    lw = base / 'lw'
    git('init', '-q', str(lw), home=home)
    (lw / 'secret.txt').write_text('local secret\n')
    git('add', '-A', cwd=lw, home=home)
    git('commit', '-qm', 'leaf', cwd=lw, home=home)
    git('clone', '-q', '--bare', str(lw), str(local), home=home)
    git('clone', '-q', '--bare', str(lw), str(srv / 'leaf.git'), home=home)
    for name, url in (('evil-path', str(local)), ('evil-file', local.as_uri()), ('relative', '../leaf.git')):
        ew = base / name
        git('init', '-q', str(ew), home=home)
        (ew / 'MLproject').write_text('name: e\nentry_points:\n  main:\n    command: "ls"\n')
        git('submodule', 'add', '-q', str(srv / 'leaf.git') if url.startswith('../') else url, 'vendor',
            cwd=ew, home=home)
        if url.startswith('../'):  # make the recorded URL relative again (git add resolved it locally)
            git('config', '-f', '.gitmodules', 'submodule.vendor.url', url, cwd=ew, home=home)
        git('add', '-A', cwd=ew, home=home)
        git('commit', '-qm', name, cwd=ew, home=home)
        git('clone', '-q', '--bare', str(ew), str(srv / f'{name}.git'), home=home)
    proc, port = start_daemon(srv, home, base / 'daemon.log')
    try:
        yield {'url': f'git://127.0.0.1:{port}', 'sha': sha, 'work': w, 'srv': srv, 'home': home}
    finally:
        stop(proc)


def test_remote_checkout_is_a_git_working_tree(mono, cache_dir):
    url = f'{mono["url"]}/mono.git'
    src = source.resolve(url)
    try:
        root = src.root
        assert_worktree(root, mono['sha'], origin=url)
        mirror = Path((root / '.git' / 'objects' / 'info' / 'alternates').read_text().strip()).parent
        assert mirror.parent == cache_dir / 'git'
        before = tree_digest(mirror)
        # project code using Git: GitPython and MLflow's own helpers see the commit and the remote
        import git as gitpython
        from mlflow.utils.git_utils import get_git_commit, get_git_repo_url

        assert gitpython.Repo(root / 'ml' / 'proj', search_parent_directories=True).head.commit.hexsha == mono['sha']
        assert get_git_commit(str(root / 'ml' / 'proj')) == mono['sha']
        assert get_git_repo_url(str(root)) == url
        assert _g(root, 'log', '--format=%H').split() == [mono['sha']]  # shallow mirror: history stops there
        # writing in the checkout never writes into the mirror
        (root / 'new.txt').write_text('x\n')
        _g(root, 'add', 'new.txt')
        _g(root, '-c', 'user.name=t', '-c', 'user.email=t@e', 'commit', '-qm', 'in checkout')
        _g(root, 'gc', '-q')
        assert tree_digest(mirror) == before
    finally:
        src.cleanup()
    assert not root.exists()


def test_subfolder_checkout_is_sparse_with_env_files_above(mono, cache_dir, monkeypatch):
    import pygit2

    monkeypatch.setenv('MLPROJ_SPARSE_CHECKOUT', '1')

    url = f'{mono["url"]}/mono.git#ml/proj'
    src = source.resolve(url)
    try:
        root = src.root
        assert_worktree(root, mono['sha'], sparse='ml/proj')
        present = sorted(str(p.relative_to(root)) for p in root.rglob('*') if '.git' not in p.parts)
        assert present == ['README', 'ml', 'ml/proj', 'ml/proj/MLproject', 'ml/proj/deep', 'ml/proj/deep/x',
                           'ml/proj/deep/x/f.txt', 'ml/proj/link', 'ml/proj/run.sh', 'ml/python_env.yaml']
        assert os.readlink(root / 'ml/proj/link') == 'run.sh' and os.access(root / 'ml/proj/run.sh', os.X_OK)
        # Git reads the sparse index mlproj wrote: directories outside the cone are single entries
        sparse = _g(root, 'ls-files', '--sparse', '-s').splitlines()
        dirs = sorted(line.split('\t')[1] for line in sparse if line.startswith('040000'))
        assert dirs == ['a-sibling/', 'ml/other/', 'ml/proj-2/', 'services/']
        # ...and expands it to exactly the commit's tree (differential against `git ls-tree`)
        full = _g(root, 'ls-files', '-s').splitlines()
        tree = _g(root, 'ls-tree', '-r', '--full-tree', 'HEAD').splitlines()
        assert [f'{m} {o} 0\t{p}' for m, _t, o, p in (t.replace('\t', ' ').split(' ', 3) for t in tree)] == full
        # libgit2 sees the commit; it cannot read a sparse index ('sdir' is a mandatory extension
        # it does not implement: the README's documented limit) until the cone is disabled below
        repo = pygit2.Repository(str(root))
        assert str(repo.head.target) == mono['sha'] and repo.head_is_detached
        # the cone can be widened by the project with plain Git (objects are borrowed)
        _g(root, 'sparse-checkout', 'add', 'ml/other')
        assert (root / 'ml/other/file.txt').read_text() == 'ml/other\n'
        assert _g(root, 'status', '--porcelain') == ''
        _g(root, 'sparse-checkout', 'disable')
        assert (root / 'services/api/file.txt').read_text() == 'services/api\n'
        assert _g(root, 'status', '--porcelain') == ''
        idx = pygit2.Repository(str(root)).index
        assert 'ml/proj/MLproject' in idx and 'services/api/file.txt' in idx
    finally:
        src.cleanup()


@pytest.mark.parametrize('setting', [None, '0'])
def test_subfolder_checkouts_are_full_unless_sparse_is_asked_for(mono, cache_dir, monkeypatch, setting):
    if setting is None:
        monkeypatch.delenv('MLPROJ_SPARSE_CHECKOUT', raising=False)
    else:
        monkeypatch.setenv('MLPROJ_SPARSE_CHECKOUT', setting)
    src = source.resolve(f'{mono["url"]}/mono.git#ml/proj')
    try:
        assert_worktree(src.root, mono['sha'])
        assert (src.root / 'services/api/file.txt').is_file()
        assert src.project_dir == (src.root / 'ml/proj').resolve()
    finally:
        src.cleanup()


def test_local_version_checkout_is_a_working_tree(mono, cache_dir, monkeypatch):
    monkeypatch.setenv('MLPROJ_SPARSE_CHECKOUT', '1')
    before = tree_digest(mono['work'])
    src = source.resolve(str(mono['work'] / 'ml' / 'proj'), 'HEAD')
    try:
        assert src.root.parent == cache_dir / 'checkouts'
        assert_worktree(src.root, mono['sha'], sparse='ml/proj')
        alternates = (src.root / '.git/objects/info/alternates').read_text().strip()
        assert Path(alternates) == (mono['work'] / '.git' / 'objects').resolve()
    finally:
        src.cleanup()
    assert tree_digest(mono['work']) == before


@pytest.mark.parametrize('name', ['evil-path', 'evil-file'])
def test_local_submodule_of_a_remote_is_refused(mono, cache_dir, name):
    url = f'{mono["url"]}/{name}.git'
    with pytest.raises(SourceError, match='points at a local path; refused'):
        source.resolve(url)
    assert list((cache_dir / 'checkouts').glob('*')) == []  # nothing exported, nothing left
    proc = run_mlproj('run', url, '--env-manager', 'local', '--dry-run')
    assert proc.returncode == 67, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('mlproj: error: submodule ') and 'Traceback' not in proc.stderr
    assert 'MLPROJ_ALLOW_FILE_SUBMODULES=1' in lines[0]


def test_local_submodule_opt_in_and_relative_urls(mono, cache_dir, monkeypatch):
    monkeypatch.setenv('MLPROJ_ALLOW_FILE_SUBMODULES', '1')
    src = source.resolve(f'{mono["url"]}/evil-path.git')
    try:
        assert (src.root / 'vendor' / 'secret.txt').read_text() == 'local secret\n'
    finally:
        src.cleanup()
    monkeypatch.delenv('MLPROJ_ALLOW_FILE_SUBMODULES')
    src = source.resolve(f'{mono["url"]}/relative.git')  # ../leaf.git resolves on the daemon
    try:
        assert (src.root / 'vendor' / 'secret.txt').read_text() == 'local secret\n'
        assert_worktree(src.root, src.commit)
    finally:
        src.cleanup()


def test_mlproj_inside_a_sparse_checkout_runs_in_place(mono, cache_dir, monkeypatch):
    """Project code that runs mlproj on its own checkout (libgit2 cannot read the sparse index)."""
    monkeypatch.setenv('MLPROJ_SPARSE_CHECKOUT', '1')
    src = source.resolve(f'{mono["url"]}/mono.git#ml/proj')
    try:
        inner = source.resolve(str(src.project_dir))
        assert inner.commit == mono['sha'] and inner.subdirectory == 'ml/proj'
        assert inner.repo_url == f'{mono["url"]}/mono.git'
    finally:
        src.cleanup()


def test_missing_subfolder_still_fails_cleanly(mono, cache_dir):
    with pytest.raises(SourceError, match='does not exist'):
        source.resolve(f'{mono["url"]}/mono.git#ml/nope')
    assert list((cache_dir / 'checkouts').glob('*')) == []
