"""One conda.yaml (and one python_env.yaml), every backend's way of installing it: the same PyPI
requirements, in the same order (issue 14: Ray had its own mapping, which drifted).

Nothing is built and no cluster is needed: the install steps of the uv and virtualenv managers are
recorded instead of run (``run_step``), and Ray's runtime_env is a pure function.  Requirement
files named by ``-r`` are read here by the test itself, independently of ``mlproj.envs``.
"""
from __future__ import annotations

import io
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlproj.backends import kubernetes, ray, slurm
from mlproj.envs import EnvContext, prepare
from mlproj.envs import interpreters as interp
from mlproj.errors import BackendError
from mlproj.request import RunRequest
from mlproj.spec import load_project
from tests.helpers import write_project

PY = f'{sys.version_info.major}.{sys.version_info.minor}'

CONDA_YAML = f'''name: demo
channels: [conda-forge]
dependencies:
  - python={PY}
  - pip
  - numpy=1.26.4
  - scikit-learn=1.3
  - scipy>=1.11
  - conda-forge::pandas=2.1.4=py311h_0
  - pip:
      - -r requirements.txt
      - mlflow>=2.9
'''
CONDA_REQUIREMENTS = ['pip', 'numpy==1.26.4', 'scikit-learn==1.3.*', 'scipy>=1.11', 'pandas==2.1.4',
                      'six==1.17.0', 'mlflow>=2.9']

PYTHON_ENV_YAML = f'''python: "{PY}"
build_dependencies: [pip, setuptools>=69]
dependencies:
  - -r requirements.txt
  - numpy==1.26.4
'''
PYTHON_ENV_REQUIREMENTS = ['pip', 'setuptools>=69', 'six==1.17.0', 'numpy==1.26.4']

REQUIREMENTS_TXT = '# pinned\nsix==1.17.0  # used by mlflow\n'

PROJECTS = {
    'conda': ('conda_env: conda.yaml', {'conda.yaml': CONDA_YAML}, CONDA_REQUIREMENTS),
    'python': ('python_env: python_env.yaml', {'python_env.yaml': PYTHON_ENV_YAML}, PYTHON_ENV_REQUIREMENTS),
}


def _project(tmp_path: Path, kind: str) -> tuple[Path, list[str]]:
    line, files, expected = PROJECTS[kind]
    proj = write_project(tmp_path / kind, f'name: demo\n{line}\nentry_points:\n  main:\n    command: "true"\n',
                         {**files, 'requirements.txt': REQUIREMENTS_TXT})
    (proj / '.git').mkdir()  # the repository root the env-file reader keeps to
    return proj, expected


def _read_requirement_args(args: list[str], cwd: Path) -> list[str]:
    """What ``uv pip install`` / ``pip install`` would install from these arguments (``-r`` read here)."""
    out: list[str] = []
    i = 0
    while i < len(args):
        if args[i] == '-r':
            for raw in (cwd / args[i + 1]).read_text().splitlines():
                line = raw.split(' #', 1)[0].strip()
                if line and not line.startswith('#'):
                    out.append(line)
            i += 2
        else:
            out.append(args[i])
            i += 1
    return out


class Recorder:
    """Stands in for the managers' build steps: keeps what each install step would install."""

    def __init__(self) -> None:
        self.installed: list[str] = []
        self.pythons: list[str | None] = []

    def run_step(self, argv, what, *, cwd, env=None, log=None, where='', show=False):
        words = list(argv)
        if 'install' in words[1:4] and words[1] != 'python':  # uv pip install / python -m pip install
            start = words.index('install') + 1
            rest = [w for w in words[start:] if w not in ('--compile-bytecode', '--compile', '--quiet')]
            if rest[:1] == ['--python']:
                rest = rest[2:]
            self.installed += _read_requirement_args(rest, Path(cwd))
        return ''

    def choose_interpreter(self, spec, installer=None):
        self.pythons.append(spec.python)
        return interp.Interpreter(sys.executable, tuple(sys.version_info[:3]), 'cpython', 'path')


@pytest.fixture
def recorder(monkeypatch, tmp_path):
    rec = Recorder()
    monkeypatch.setenv('MLPROJ_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.setattr('mlproj.envs.venv.choose_interpreter', rec.choose_interpreter)
    monkeypatch.setattr('mlproj.envs.uv.run_step', rec.run_step)
    monkeypatch.setattr('mlproj.envs.uv.uv_bin', lambda: 'uv')
    monkeypatch.setattr('mlproj.envs.virtualenv.run_step', rec.run_step)
    return rec


def _launch(proj: Path, manager: str, tmp_path: Path, backend_config=None) -> SimpleNamespace:
    request = RunRequest(uri=str(proj), backend_config=backend_config or {})
    return SimpleNamespace(request=request, project=load_project(proj), env_manager=manager, project_dir=proj,
                           tracking_uri=(tmp_path / 'mlruns').as_uri(), run_id='0123456789abcdef',
                           experiment_id='0', command='true', run_env={'MLFLOW_RUN_ID': '0123456789abcdef'},
                           source=SimpleNamespace(cleanup=lambda: None, source_name=None, uri=str(proj)))


def _local(proj, manager, tmp_path, rec) -> list[str]:
    """-b local (mlproj.backends.local.submit): envs.prepare on this machine."""
    rec.installed = []
    prepare(load_project(proj), manager, EnvContext(log=io.StringIO()))
    return rec.installed


def _slurm(proj, manager, tmp_path, rec, monkeypatch) -> list[str]:
    """-b slurm: slurm.submit prepares the environment on the submitting host (sbatch refused here)."""
    rec.installed = []
    monkeypatch.setattr(slurm, '_tool', lambda name: name)
    monkeypatch.setattr(slurm, '_call', lambda argv, timeout=60.0, env=None: subprocess.CompletedProcess(
        argv, 1, '', 'sbatch: error: not here'))
    launch = _launch(proj, manager, tmp_path, {'shared_dir': str(tmp_path / 'shared')})
    with pytest.raises(BackendError, match='sbatch failed'):
        slurm.submit(launch)
    return rec.installed


def _ray(proj, installer, tmp_path) -> list[str]:
    env, label = ray.runtime_env_for(_launch(proj, 'uv', tmp_path), {'pip_installer': installer})
    assert label == installer
    return env[installer]['packages']


@pytest.mark.parametrize('kind', sorted(PROJECTS))
def test_every_backend_installs_the_same_requirements(kind, tmp_path, recorder, monkeypatch):
    proj, expected = _project(tmp_path, kind)
    paths = {
        'local uv': _local(proj, 'uv', tmp_path, recorder),
        'local virtualenv': _local(proj, 'virtualenv', tmp_path, recorder),
        'slurm uv': _slurm(proj, 'uv', tmp_path, recorder, monkeypatch),
        'slurm virtualenv': _slurm(proj, 'virtualenv', tmp_path, recorder, monkeypatch),
        'ray pip': _ray(proj, 'pip', tmp_path),
        'ray uv': _ray(proj, 'uv', tmp_path),
    }
    assert paths == {name: expected for name in paths}
    assert recorder.pythons == [PY] * 4   # every venv path asks for the env file's Python


@pytest.mark.parametrize('kind', sorted(PROJECTS))
def test_kubernetes_reads_no_env_file(kind, tmp_path):
    """-b kubernetes runs a docker_env image (built FROM docker_env.image, or given): it installs
    no requirements of its own, so a python_env / conda_env project is refused, not mapped."""
    proj, _ = _project(tmp_path, kind)
    with pytest.raises(BackendError, match='has no docker_env'):
        kubernetes.build_and_push(_launch(proj, 'uv', tmp_path), 'registry.example/demo', push=False)


def test_ray_conda_manager_gets_the_same_conda_spec_conda_would(tmp_path):
    proj, _ = _project(tmp_path, 'conda')
    env, label = ray.runtime_env_for(_launch(proj, 'conda', tmp_path), {})
    assert label == 'conda'
    assert env['conda']['dependencies'][:-1] == [f'python={PY}', 'pip', 'numpy=1.26.4', 'scikit-learn=1.3',
                                                 'scipy>=1.11', 'conda-forge::pandas=2.1.4=py311h_0']
    assert env['conda']['dependencies'][-1] == {'pip': ['six==1.17.0', 'mlflow>=2.9']}


def test_the_recorder_reads_install_steps_as_pip_would(tmp_path):
    (tmp_path / 'r.txt').write_text(REQUIREMENTS_TXT)
    rec = Recorder()
    rec.run_step(['uv', 'pip', 'install', '--python', 'x/bin/python', '--compile-bytecode',
                  *shlex.split('-r r.txt a>=1')], 'installing', cwd=tmp_path)
    rec.run_step(['uv', 'venv', '--quiet', '--no-project', '--python', 'x', 'target'], 'creating', cwd=tmp_path)
    rec.run_step(['x/bin/python', '-m', 'pip', 'install', '--quiet', '--compile', 'b'], 'installing', cwd=tmp_path)
    assert rec.installed == ['six==1.17.0', 'a>=1', 'b']
