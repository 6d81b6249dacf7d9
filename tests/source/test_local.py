"""Local directories and repositories: in-place runs, dirty trees, `-v` exports that never touch the user's repo."""
from __future__ import annotations

import os
import shutil

import pytest

from mlproj import source
from mlproj.errors import SourceError
from tests.helpers.git import git
from tests.helpers.source import tree_digest


@pytest.fixture
def clone(repos, tmp_path):
    """A private working clone the test may dirty."""
    path = tmp_path / 'clone'
    git('clone', '-q', '--recurse-submodules', str(repos.srv / 'proj.git'), str(path), home=repos.home)
    return path


def test_version_on_a_work_tree_exports_and_never_touches_it(repos, cache_dir):
    before_work, before_srv = tree_digest(repos.work), tree_digest(repos.srv)
    cases = [
        (str(repos.work), 'v1.0', 'B', ''),
        (str(repos.work) + '#sub/folder', 'feature', 'D', 'sub/folder'),
        (str(repos.work / 'sub'), repos.sha['A'][:8], 'A', 'sub'),
        (str(repos.work / 'sub') + '#folder', 'HEAD~1', 'B', 'sub/folder'),
        (repos.work.as_uri(), 'main', 'C', ''),
    ]
    for uri, rev, label, sub in cases:
        src = source.resolve(uri, rev)
        try:
            assert src.commit == repos.sha[label], uri
            assert (src.root / 'VERSION').read_text() == f'{label}\n'
            assert src.root.parent == cache_dir / 'checkouts'
            assert src.subdirectory == sub
            assert src.project_dir == (src.root / sub).resolve()
            assert src.source_name == repos.work.resolve().as_uri() + (f'#{sub}' if sub else '')
            assert src.tags()['mlproj.source.uri'] == repos.work.resolve().as_uri()
            if label == 'C':  # submodules exported from the work tree's .git/modules
                assert (src.root / 'vendor/lib/leaf/leaf.txt').read_text() == 'leaf\n'
        finally:
            src.cleanup()
        assert not src.root.exists()
    assert tree_digest(repos.work) == before_work
    assert tree_digest(repos.srv) == before_srv


def test_in_place_clean_tree_records_head(repos):
    src = source.resolve(str(repos.work) + '#sub/folder')
    assert src.root == repos.work.resolve()
    assert src.project_dir == (repos.work / 'sub' / 'folder').resolve()
    assert src.commit == repos.sha['C'] and not src.dirty
    tags = src.tags()
    assert tags['mlflow.source.git.dirty'] == 'false'
    assert tags['mlflow.source.git.repoURL'] == str(repos.srv / 'proj.git')
    src.cleanup()
    assert src.project_dir.is_dir()  # in place: cleanup never deletes the user's files


def test_dirty_tree_is_recorded_or_refused(clone):
    (clone / 'VERSION').write_text('changed\n')
    src = source.resolve(str(clone))
    assert src.dirty and len(src.diff_hash) == 64
    assert src.tags()['mlflow.source.git.dirty'] == 'true'
    assert src.tags()['mlproj.source.git.diff_sha256'] == src.diff_hash
    (clone / 'VERSION').write_text('changed again\n')
    assert source.resolve(str(clone)).diff_hash != src.diff_hash
    with pytest.raises(SourceError, match='uncommitted changes'):
        source.resolve(str(clone), require_clean=True)
    # -v exports the committed tree: the dirty file is not in it, the clone keeps its change
    exported = source.resolve(str(clone), 'HEAD')
    try:
        assert (exported.root / 'VERSION').read_text() == 'C\n' and not exported.dirty
    finally:
        exported.cleanup()
    assert (clone / 'VERSION').read_text() == 'changed again\n'


def test_bare_repository_by_path_and_file_uri(repos, cache_dir):
    for uri in (str(repos.srv / 'proj.git'), (repos.srv / 'proj.git').as_uri() + '#sub/folder'):
        src = source.resolve(uri)
        try:
            assert src.commit == repos.sha['C'] and src.branch == 'main'
            assert (src.root / 'VERSION').read_text() == 'C\n'
        finally:
            src.cleanup()


def test_directory_outside_git(repos):
    src = source.resolve(str(repos.plain))
    assert src.commit is None and src.root == repos.plain.resolve()
    assert 'mlflow.source.git.commit' not in src.tags()
    with pytest.raises(SourceError, match='needs a Git repository'):
        source.resolve(str(repos.plain), 'main')


@pytest.mark.parametrize('sub,message', [
    ('nope', "subdirectory 'nope' does not exist"),
    ('evil', 'escapes the repository through a symlink'),
    ('evil2', 'escapes the repository through a symlink'),
    ('evil2/etc', 'escapes the repository through a symlink'),
    ('VERSION', "subdirectory 'VERSION' does not exist"),
])
@pytest.mark.parametrize('how', ['in-place', 'export'])
def test_bad_subdirectories(repos, cache_dir, sub, message, how):
    rev = 'main' if how == 'export' else None
    with pytest.raises(SourceError) as e:
        source.resolve(f'{repos.work}#{sub}', rev)
    assert message in str(e.value)
    checkouts = cache_dir / 'checkouts'
    assert not checkouts.exists() or [p for p in checkouts.iterdir() if p.is_dir()] == []


def test_unknown_revision_is_one_line(repos, cache_dir):
    with pytest.raises(SourceError) as e:
        source.resolve(str(repos.work), 'no-such-branch')
    assert str(e.value) == f"revision 'no-such-branch' not found ({repos.work.resolve().as_uri()})"


def test_revision_that_is_not_a_commit(repos, cache_dir):
    with pytest.raises(SourceError, match='does not name a commit'):
        source.resolve(str(repos.work), 'main:VERSION')


def test_keep_checkout(repos, cache_dir, capsys):
    src = source.resolve(str(repos.work), 'v1.0', keep_checkout=True)
    src.cleanup()
    assert (src.root / 'VERSION').read_text() == 'B\n'
    assert 'kept at' in capsys.readouterr().err
    shutil.rmtree(src.root)


def test_export_survives_read_only_files_made_by_the_run(repos, cache_dir):
    src = source.resolve(str(repos.work), 'v1.0')
    ro = src.root / 'sub' / 'made-by-run'
    ro.mkdir()
    (ro / 'f').write_text('x')
    os.chmod(ro / 'f', 0o400)
    os.chmod(ro, 0o500)
    src.cleanup()
    assert not src.root.exists()
