"""Environment managers: one module per manager behind one Protocol.

A manager turns the project's environment spec into a prepared ``Environment``, which knows how
to run the entry point's shell command inside it.  Managers are registered by name in
``MANAGERS`` (module path, imported lazily so that unused managers cost nothing); the choices of
``--env-manager`` (``CLI_MANAGERS``, re-exported as ``mlproj.request.ENV_MANAGERS`` for the CLI)
are derived from it.  Importing this package is cheap (no ``mlproj.spec``, no manager module):
the CLI imports it to build its options.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from mlproj.errors import EnvError

if TYPE_CHECKING:
    from pathlib import Path

    from mlproj.spec_model import Project

# name -> module implementing ``prepare(project, ctx) -> Environment``
MANAGERS: dict[str, str] = {
    'local': 'mlproj.envs.local',
    'uv': 'mlproj.envs.uv',
    'virtualenv': 'mlproj.envs.virtualenv',
    'conda': 'mlproj.envs.conda',
    'docker': 'mlproj.envs.docker',
}

# What ``--env-manager`` accepts: every manager but docker, which a docker_env project chooses
# itself (as in MLflow, whose choices are local, conda, virtualenv and uv).
CLI_MANAGERS: tuple[str, ...] = tuple(m for m in MANAGERS if m != 'docker')


# The manager used when --env-manager is not given, by the project's environment kind.  A project
# without any environment runs in the caller's environment (MLflow would build an empty venv
# through pyenv, which fails without pyenv and lacks mlflow even when it works).
DEFAULT_FOR_KIND = {'none': 'local', 'python': 'uv', 'conda': 'uv'}


@dataclass(frozen=True)
class EnvContext:
    """What a manager may need besides the project."""
    docker_args: Mapping[str, Any] = field(default_factory=dict)
    build_image: bool = False
    tracking_uri: str | None = None
    run_id: str | None = None
    experiment_id: str | None = None
    # the stderr of when the context is made, so --quiet's filter (mlproj.quiet) applies to the build lines
    log: TextIO = field(default_factory=lambda: sys.stderr)
    pass_env: tuple[str, ...] = ()     # --pass-env names (mlproj.childenv)
    env_lock: bytes | None = None      # uv/virtualenv: install this exact lock (mlproj.envs.lock) instead of the spec


class Environment(Protocol):
    manager: str            # 'local', 'uv', 'virtualenv', 'conda', 'docker'
    tag: str | None         # value for the mlflow.project.env tag (None for local, as MLflow)
    hash: str | None        # content hash of the environment (mlproj.env.hash), None for local
    # Optional: ``extra_tags: Mapping[str, str]``, more run tags (docker: mlflow.docker.image.uri/.id;
    # uv/virtualenv: mlproj.env.lock_sha256), and ``artifacts: Mapping[str, Path]``, files logged as
    # run artifacts under those paths (uv/virtualenv: the lock, mlproj/requirements.lock.txt).

    def argv(self, command: str, env: dict[str, str], cwd: Path) -> tuple[list[str], dict[str, str]]:
        """The argv that runs the shell ``command`` in this environment, and the child's env."""
        ...


class Manager(Protocol):
    def prepare(self, project: Project, ctx: EnvContext) -> Environment: ...


def select_manager(project: Project, requested: str | None) -> str:
    """The manager to use for ``project`` given ``--env-manager`` (None = automatic).

    docker_env always runs in docker (as in MLflow).  Without ``--env-manager``, a conda_env
    project uses conda when a conda, mamba or micromamba executable is available, else uv (its
    conda.yaml mapped onto PyPI).  ``conda`` on a project without a conda_env is refused, as MLflow
    refuses it.
    """
    manager = _select(project, requested)
    check_env_file(project, manager)
    return manager


def check_env_file(project: Project, manager: str) -> None:
    """Validate the env file the manager will read (cheap, no side effects), so a malformed
    python_env.yaml / conda.yaml fails with file:line:col before any MLflow run is created."""
    env = project.env
    if manager in ('local', 'docker') or env.path is None:
        return
    from mlproj.envs import envfiles

    if env.kind == 'python':
        envfiles.load_python_env(env.path, project.directory, project.root)
    elif env.kind == 'conda':
        conda = envfiles.load_conda_env(env.path, project.root)
        if manager in ('uv', 'virtualenv'):
            envfiles.conda_to_python_env(conda)


def _select(project: Project, requested: str | None) -> str:
    kind = project.env.kind
    if kind == 'docker':
        return 'docker'
    if requested is None:
        if kind == 'conda':
            from mlproj.envs.conda import conda_available

            if conda_available():
                return 'conda'
        default = DEFAULT_FOR_KIND.get(kind, 'local')
        return default if default in MANAGERS else 'local'
    if requested not in CLI_MANAGERS:
        raise EnvError(f'env manager {requested!r} is not available; available: ' + ', '.join(sorted(CLI_MANAGERS)))
    if requested == 'conda' and kind != 'conda':
        what = 'a python_env project' if kind == 'python' else 'a project without a conda_env'
        raise EnvError(f'{what} cannot be executed using conda (MLflow refuses it too); use --env-manager uv, '
                       'virtualenv or local', str(project.env.path or project.mlproject_path or project.directory))
    return requested


def get_manager(name: str) -> Manager:
    try:
        module = MANAGERS[name]
    except KeyError:
        raise EnvError(f'unknown env manager {name!r}; known: ' + ', '.join(sorted(MANAGERS))) from None
    return importlib.import_module(module)  # type: ignore[return-value]


def prepare(project: Project, manager: str, ctx: EnvContext) -> Environment:
    return get_manager(manager).prepare(project, ctx)
