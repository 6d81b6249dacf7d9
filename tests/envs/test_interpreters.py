"""Interpreter discovery (launcher, pyenv, uv-managed, PATH) and python version matching."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from mlproj.envs import interpreters
from mlproj.envs.interpreters import Interpreter, discover, find, matcher
from mlproj.errors import EnvError

REAL = os.path.realpath(sys.executable)


def fake_layout(tmp_path: Path, monkeypatch) -> None:
    """pyenv and uv-managed Pythons whose versions come from their directory names."""
    pyenv = tmp_path / 'pyenv'
    for v in ('3.42.1', '3.42.7', '3.43.0'):
        d = pyenv / 'versions' / v / 'bin'
        d.mkdir(parents=True)
        (d / 'python').symlink_to(REAL)
        # distinct real paths, as real installations have
        real = d / f'python{v}'
        real.write_text('#!/bin/sh\nexit 1\n')
        real.chmod(0o755)
        (d / 'python').unlink()
        (d / 'python').symlink_to(real)
    (pyenv / 'versions' / 'miniconda3-latest').mkdir()
    shims = pyenv / 'shims'
    shims.mkdir()
    (shims / 'python3').write_text('#!/bin/sh\necho shim; exit 1\n')
    (shims / 'python3').chmod(0o755)
    uvdir = tmp_path / 'uvpy' / 'cpython-3.44.2-linux-x86_64-gnu' / 'bin'
    uvdir.mkdir(parents=True)
    (uvdir / 'python3').write_text('#!/bin/sh\nexit 1\n')
    (uvdir / 'python3').chmod(0o755)
    monkeypatch.setenv('PYENV_ROOT', str(pyenv))
    monkeypatch.setenv('UV_PYTHON_INSTALL_DIR', str(tmp_path / 'uvpy'))
    monkeypatch.setenv('PATH', f'{shims}:{os.environ["PATH"]}')


def test_pyenv_and_uv_versions_come_from_names_and_shims_are_skipped(tmp_path, monkeypatch):
    fake_layout(tmp_path, monkeypatch)
    found = discover(tmp_path / 'probe.json')
    by_source = {}
    for i in found:
        by_source.setdefault(i.source, []).append(i.version_text)
    assert by_source['launcher'] == ['.'.join(map(str, sys.version_info[:3]))]
    assert by_source['pyenv'] == ['3.43.0', '3.42.7', '3.42.1']
    assert by_source['uv'] == ['3.44.2']
    assert not any('shims' in i.path for i in found)
    assert find('3.42', candidates=found).version_text == '3.42.7'
    assert find('3.42.1', candidates=found).version_text == '3.42.1'
    assert find('>=3.42.5,<3.44', candidates=found).version_text == '3.43.0'
    assert find('3.44', candidates=found).source == 'uv'
    assert find('3.45', candidates=found) is None


def test_path_interpreters_are_probed_once_and_cached(tmp_path, monkeypatch):
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    (bindir / 'python3.11').symlink_to(REAL)
    monkeypatch.setenv('PATH', str(bindir))
    monkeypatch.setenv('PYENV_ROOT', str(tmp_path / 'none'))
    monkeypatch.setenv('UV_PYTHON_INSTALL_DIR', str(tmp_path / 'none'))
    monkeypatch.setattr(interpreters, 'launcher', lambda: Interpreter('/nonexistent/python', (3, 0, 0), 'cpython',
                                                                      'launcher'))
    cache = tmp_path / 'probe.json'
    found = discover(cache)
    assert [(i.path, i.version, i.source) for i in found if i.source == 'path'] == [
        (REAL, tuple(sys.version_info[:3]), 'path')]
    data = json.loads(cache.read_text())
    assert data[REAL]['version'] == list(sys.version_info[:3])
    # a second discovery answers from the cache: no subprocess
    import subprocess

    def no_subprocess(*a, **k):
        raise AssertionError('probed again')

    monkeypatch.setattr(subprocess, 'run', no_subprocess)
    assert [i.version for i in discover(cache) if i.source == 'path'] == [tuple(sys.version_info[:3])]


def test_virtualenv_bins_on_path_are_not_candidates(tmp_path, monkeypatch):
    venv = tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True)
    (venv / 'pyvenv.cfg').write_text('home = /usr/bin\n')
    (venv / 'bin' / 'python3').symlink_to(REAL)
    monkeypatch.setenv('PATH', str(venv / 'bin'))
    monkeypatch.setenv('PYENV_ROOT', str(tmp_path / 'none'))
    assert not [i for i in discover(tmp_path / 'p.json') if i.source == 'path']


@pytest.mark.parametrize('spec, yes, no', [
    ('3', (3, 9, 1), (2, 7, 18)),
    ('3.10', (3, 10, 13), (3, 11, 0)),
    ('3.10.*', (3, 10, 0), (3, 1, 0)),
    ('3.10.13', (3, 10, 13), (3, 10, 14)),
    ('>=3.10,<3.12', (3, 11, 7), (3, 12, 0)),
    ('~=3.10.2', (3, 10, 9), (3, 11, 0)),
])
def test_matcher(spec, yes, no):
    m = matcher(spec)
    assert m(yes) and not m(no)


def test_no_spec_means_the_launchers_version():
    assert matcher(None)(tuple(sys.version_info[:3]))


@pytest.mark.parametrize('spec', ['pypy3.9', '3.10.x', 'latest', '>=3.10,,<'])
def test_bad_spec_is_a_clear_error(spec):
    with pytest.raises(EnvError, match='invalid python version'):
        matcher(spec, 'python_env.yaml:1:9')
