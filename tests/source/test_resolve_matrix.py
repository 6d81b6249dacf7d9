"""Every URI form x every revision kind x root/subfolder, against real servers on loopback."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlproj import source
from tests.helpers.source import FORMS, assert_worktree

# (revision, expected commit label, expected branch tag)
REVS = [
    (None, 'C', 'main'),
    ('feature', 'D', 'feature'),
    ('v1.0', 'B', None),
    ('light', 'A', None),
    ('short:A', 'A', None),
    ('full:B', 'B', None),
    ('HEAD~2', 'A', None),
    ('v1.0^{commit}', 'B', None),
]


@pytest.fixture(scope='module')
def shared_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp('matrix-cache')


@pytest.mark.parametrize('subdir', ['', 'sub/folder'])
@pytest.mark.parametrize('rev,label,branch', REVS, ids=[str(r[0]) for r in REVS])
@pytest.mark.parametrize('form', FORMS)
def test_resolve(form, rev, label, branch, subdir, repos, url_for, shared_cache, monkeypatch):
    monkeypatch.setenv('MLPROJ_CACHE_DIR', str(shared_cache))
    if rev and rev.startswith('short:'):
        rev = repos.sha[rev[6:]][:7]
    elif rev and rev.startswith('full:'):
        rev = repos.sha[rev[5:]]
    uri = url_for(form) + (f'#{subdir}' if subdir else '')
    src = source.resolve(uri, rev)
    try:
        assert src.commit == repos.sha[label]
        root = src.root
        assert (root / 'VERSION').read_text() == label + '\n'
        assert src.project_dir == (root / subdir if subdir else root).resolve()
        assert (src.project_dir / 'MLproject').is_file()
        assert os.readlink(root / 'link.py') == 'show.py'
        assert os.access(root / 'run.sh', os.X_OK)
        assert src.subdirectory == subdir
        assert src.branch == branch
        tags = src.tags()
        assert tags['mlflow.source.git.commit'] == repos.sha[label]
        assert tags.get('mlproj.source.subdirectory', '') == subdir
        in_place = form == 'worktree' and rev is None
        if label == 'C':  # submodules, recursively (the whole tree, #subfolder or not)
            assert (root / 'vendor' / 'lib' / 'lib.txt').read_text() == 'lib\n'
            assert (root / 'vendor' / 'lib' / 'leaf' / 'leaf.txt').read_text() == 'leaf\n'
        if in_place:
            assert root == repos.work.resolve()
            assert tags['mlflow.source.name'] == repos.work.resolve().as_uri() + (f'#{subdir}' if subdir else '')
        else:
            # a Git working tree at exactly the commit, clean, objects borrowed from the cache
            # the whole tree, as MLflow's clone (sparse #subfolder is opt-in: tests/source/test_worktree.py)
            assert_worktree(root, repos.sha[label])
            assert root.parent == shared_cache / 'checkouts'
        if form in ('git', 'http', 'https', 'ssh', 'scp'):
            base = url_for(form)
            assert src.repo_url == base
            assert tags['mlflow.source.git.repoURL'] == base
            assert tags['mlflow.source.name'] == base + (f'#{subdir}' if subdir else '')
            assert tags['mlproj.source.uri'] == base
    finally:
        src.cleanup()
    if not (form == 'worktree' and rev is None):
        assert not root.exists()
