"""MLflow's zip URI form: local, file:// and http:// archives, extracted safely into a removable checkout."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from mlproj import source
from mlproj.errors import SourceError
from tests.helpers import free_port
from tests.helpers.source import MLPROJECT, stop, wait_port


@pytest.fixture
def archives(tmp_path):
    good = tmp_path / 'proj.zip'
    with zipfile.ZipFile(good, 'w') as zf:
        zf.writestr('proj-main/MLproject', MLPROJECT.format(name='zipped'))
        info = zipfile.ZipInfo('proj-main/run.sh')
        info.external_attr = 0o100755 << 16
        zf.writestr(info, '#!/bin/sh\n')
        zf.writestr('proj-main/v1.2/.ci/keep', 'x')
    evil = tmp_path / 'evil.zip'
    with zipfile.ZipFile(evil, 'w') as zf:
        zf.writestr('../../escaped.txt', 'x')
    return good, evil


def test_local_and_file_zip(archives, cache_dir):
    good, _ = archives
    for uri in (f'{good}#proj-main', good.as_uri() + '#proj-main/v1.2/.ci'):
        src = source.resolve(uri)
        try:
            assert src.commit is None and src.root.parent == cache_dir / 'checkouts'
            assert src.tags()['mlflow.source.name'] == good.as_uri() + '#' + src.subdirectory
        finally:
            src.cleanup()
        assert not src.root.exists()
    src = source.resolve(f'{good}#proj-main')
    assert (src.project_dir / 'MLproject').is_file() and os.access(src.project_dir / 'run.sh', os.X_OK)
    src.cleanup()


def test_zip_over_http(archives, tmp_path, cache_dir):
    good, _ = archives
    port = free_port()
    proc = subprocess.Popen([sys.executable, '-m', 'http.server', '--bind', '127.0.0.1', str(port), '--directory',
                             str(good.parent)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_port('127.0.0.1', port, proc)
        src = source.resolve(f'http://127.0.0.1:{port}/proj.zip#proj-main')
        try:
            assert (src.project_dir / 'MLproject').is_file() and src.is_remote
        finally:
            src.cleanup()
        with pytest.raises(SourceError, match='cannot download the archive: HTTP 404'):
            source.resolve(f'http://127.0.0.1:{port}/missing.zip')
    finally:
        stop(proc)
    assert [p for p in (cache_dir / 'checkouts').iterdir()] == []


def test_hostile_or_unsupported_archives(archives, tmp_path, cache_dir):
    good, evil = archives
    with pytest.raises(SourceError, match="zip member '../../escaped.txt' attempts path traversal"):
        source.resolve(str(evil))
    assert not (tmp_path / 'escaped.txt').exists() and not (cache_dir / 'escaped.txt').exists()
    with pytest.raises(SourceError, match='--version is only supported for Git sources'):
        source.resolve(str(good), 'main')
    bad = tmp_path / 'bad.zip'
    bad.write_text('not a zip')
    with pytest.raises(SourceError, match='not a valid zip archive'):
        source.resolve(str(bad))
    assert [p for p in (cache_dir / 'checkouts').iterdir() if p.is_dir()] == []
