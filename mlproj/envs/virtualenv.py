"""``--env-manager virtualenv`` (MLflow's name): the python_env spec with virtualenv/venv + pip.

Unlike MLflow there is no pyenv requirement: the interpreter is found among installed ones
(``interpreters.find``); nothing is compiled or downloaded.  The venv is made by the
``virtualenv`` package when it is installed (``pip install mlproj[virtualenv]``; it seeds pip
from its bundled wheels, offline) and otherwise by the interpreter's own ``-m venv``.  Packages
are installed with the venv's ``python -m pip install --compile``, so the user's pip configuration
applies and site-packages is byte-compiled at build time (pip writes ``.pyc`` files even under
``PYTHONDONTWRITEBYTECODE=1``, which only stops the interpreter itself from writing them).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from mlproj.envs import EnvContext
from mlproj.envs.envfiles import PythonEnv
from mlproj.envs.interpreters import Interpreter
from mlproj.envs.venv import VenvEnvironment, base_env, prepare_venv, quiet_flag, requirement_args, run_step
from mlproj.spec_model import Project

MANAGER = 'virtualenv'


def build(target: Path, spec: PythonEnv, interpreter: Interpreter, project_dir: Path, ctx: EnvContext,
          locked: dict[str, str]) -> dict:
    env = base_env(ctx.pass_env)
    env.setdefault('PIP_DISABLE_PIP_VERSION_CHECK', '1')
    env.setdefault('PIP_NO_INPUT', '1')
    where = spec.source or str(project_dir)
    if importlib.util.find_spec('virtualenv') is not None:
        create = [sys.executable, '-m', 'virtualenv', *quiet_flag(), '--no-periodic-update', '--python',
                  interpreter.path, str(target)]
    else:
        create = [interpreter.path, '-m', 'venv', str(target)]
    run_step(create, 'creating the virtual environment', cwd=project_dir, env=env, log=ctx.log, where=where,
             show=True)
    python = str(target / 'bin' / 'python')
    for what, lines in (('build_dependencies', spec.build_dependencies), ('dependencies', spec.dependencies)):
        if lines:
            run_step([python, '-m', 'pip', 'install', *quiet_flag(show_all=True), '--compile',
                      *requirement_args(lines)], f'installing {what}',
                     cwd=project_dir, env=env, log=ctx.log, where=where, show=True)
    return {}


def prepare(project: Project, ctx: EnvContext) -> VenvEnvironment:
    return prepare_venv(project, ctx, MANAGER, build_fn=build, installer=None)
