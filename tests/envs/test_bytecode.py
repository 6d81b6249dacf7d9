"""Environments are byte-compiled at build time (issue 13, case 8).

Where ``PYTHONDONTWRITEBYTECODE=1`` is set (CI images, containers) the interpreter never writes
``.pyc`` files, so an uncompiled environment recompiles every module on every warm run.  uv
(``--compile-bytecode``) and pip (``--compile``) write them at build time whatever the variable
says; the flag is part of the environment's key, so environments built before are rebuilt once.
"""
from __future__ import annotations

import io
import os
import subprocess

import pytest

from mlproj.envs import EnvContext, prepare
from mlproj.envs import venv as venv_mod
from mlproj.envs.store import content_hash
from mlproj.spec import load_project
from tests.envs.test_uv import make


def _site_packages(env_path):
    (lib,) = (env_path / 'lib').iterdir()
    return lib / 'site-packages'


@pytest.mark.parametrize('manager', ['uv', 'virtualenv'])
def test_site_packages_compiled_even_with_dontwritebytecode(tmp_path, offline_index, monkeypatch, manager):
    monkeypatch.setenv('PYTHONDONTWRITEBYTECODE', '1')
    proj = make(tmp_path, ['mlproj-tiny-b'])
    log = io.StringIO()
    env = prepare(load_project(proj), manager, EnvContext(log=log))
    site = _site_packages(env.path)
    for module in ('mlproj_tiny_a', 'mlproj_tiny_b'):
        pycs = list((site / module / '__pycache__').glob('__init__.cpython-*.pyc'))
        assert pycs, f'{module} was not byte-compiled'
    # the project's import uses them: nothing new is written, nothing needs to be
    before = sorted(p.name for p in site.rglob('*.pyc'))
    argv, child = env.argv('python -c "import mlproj_tiny_b"', dict(os.environ), tmp_path)
    subprocess.run(argv, env=child, check=True)
    assert sorted(p.name for p in site.rglob('*.pyc')) == before


def test_uv_asks_to_compile_on_the_last_install_step_only(tmp_path, offline_index, monkeypatch):
    calls: list[list[str]] = []
    real = venv_mod.run_step

    def recording(argv, what, **kw):
        calls.append(list(argv))
        return real(argv, what, **kw)

    import mlproj.envs.uv as uv_mod

    monkeypatch.setattr(uv_mod, 'run_step', recording)
    (tmp_path / 'p').mkdir()
    proj = make(tmp_path, ['mlproj-tiny-a'])
    (proj / 'python_env.yaml').write_text((proj / 'python_env.yaml').read_text().replace(
        'build_dependencies: []', 'build_dependencies: ["mlproj-tiny-pandas"]'))
    prepare(load_project(proj), 'uv', EnvContext(log=io.StringIO()))
    installs = [c for c in calls if c[1:3] == ['pip', 'install']]
    assert len(installs) == 2
    assert '--compile-bytecode' not in installs[0] and '--compile-bytecode' in installs[1]


def test_compilation_is_in_the_key_so_old_envs_are_rebuilt_once(tmp_path, offline_index):
    proj = make(tmp_path, ['mlproj-tiny-a'])
    project = load_project(proj)
    log = io.StringIO()
    env = prepare(project, 'uv', EnvContext(log=log))
    spec = venv_mod.project_python_env(project)
    from mlproj.envs.interpreters import find

    interp = find(spec.python)
    payload = venv_mod.key_payload('uv', spec, interp, proj)
    assert payload['bytecode'] == 'compiled' and env.hash == content_hash(payload)
    # an environment built before compilation existed had this key: it is never found again
    old = {k: v for k, v in payload.items() if k != 'bytecode'}
    assert content_hash(old) != env.hash
    # ...and the compiled one is built once, then reused
    log2 = io.StringIO()
    assert prepare(project, 'uv', EnvContext(log=log2)).path == env.path and log2.getvalue() == ''
