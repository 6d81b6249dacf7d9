"""``--env-manager uv`` (the default for python_env and, without conda, conda_env projects).

uv comes from the ``uv`` package mlproj depends on (``uv.find_uv_bin()``), not from PATH.
Steps, each a plain ``uv`` command so a first build costs what ``uv venv && uv pip install`` costs:

1. ``uv venv --python <interpreter> <env>`` with an interpreter found by ``interpreters.find``
   (uv installs one with ``uv python install`` when none matches, unless
   ``UV_PYTHON_DOWNLOADS=never``);
2. ``uv pip install`` of ``build_dependencies``, then, when the project has ``uv.lock`` and
   ``pyproject.toml``, ``uv sync --frozen --no-dev --no-install-project`` into the env (as MLflow
   does), then ``uv pip install`` of ``dependencies``.  Requirement lines are passed as arguments
   with the project directory as working directory, so ``-r requirements.txt`` and ``./pkg``
   resolve against the project.

``uv.lock``, ``pyproject.toml`` and ``.python-version`` are hashed and copied through
``mlproj.safefile`` (inside the repository root, regular files, ``uv.lock`` at most
``MLPROJ_MAX_LOCK_BYTES``, the others ``MLPROJ_MAX_FILE_BYTES``): uv quotes a file it cannot
parse, so a symlink to a file outside the repository must never reach it.

The last install step passes ``--compile-bytecode``: uv byte-compiles the whole site-packages once,
at build time.  Python never writes ``.pyc`` files where ``PYTHONDONTWRITEBYTECODE=1`` is set (CI
images, containers), so without this every warm run would recompile pandas or scikit-learn on
import; compiled files are read even under that variable.  The flag is part of the cache key
(``venv.key_payload``), so environments built before it are rebuilt once.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from mlproj import safefile
from mlproj.envs import EnvContext
from mlproj.envs.envfiles import PythonEnv
from mlproj.envs.interpreters import Interpreter
from mlproj.envs.venv import (
    VenvEnvironment,
    base_env,
    prepare_venv,
    quiet_flag,
    requirement_args,
    run_step,
)
from mlproj.errors import EnvError
from mlproj.spec_model import Project

MANAGER = 'uv'


def uv_bin() -> str:
    from mlproj.settings import env_value

    explicit: str | None = env_value('MLPROJ_UV')
    if explicit:
        return explicit
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which('uv')
        if found:
            return found
    raise EnvError('cannot find the uv executable: pip install "mlproj[run]" (it depends on the uv package) '
                   'or set MLPROJ_UV')


def install_python(spec: str | None) -> str | None:
    """Try ``uv python install``; None on success, else the reason it failed."""
    if os.environ.get('UV_PYTHON_DOWNLOADS', '').lower() in ('never', 'false', '0'):
        return 'Python downloads are disabled (UV_PYTHON_DOWNLOADS=never)'
    if spec is None:
        return 'no version given'
    try:
        run_step([uv_bin(), 'python', 'install', spec], f'uv python install {spec}', cwd=Path.cwd(), env=base_env(),
                 show=True)
    except EnvError as e:
        return e.message
    return None


LOCK_NAMES = ('uv.lock', 'pyproject.toml', '.python-version')


def _read_lock_file(project_dir: Path, name: str, root: Path | None) -> bytes:
    path = project_dir / name
    big = name == 'uv.lock'
    try:
        return safefile.read_bytes(path, root if root is not None else safefile.find_root(project_dir),
                                   what=name, limit=safefile.max_lock_bytes() if big else None,
                                   limit_env=safefile.MAX_LOCK_BYTES_ENV if big else safefile.MAX_BYTES_ENV)
    except safefile.Refused as e:
        raise EnvError(e.message, str(path)) from None


def lock_files(project_dir: Path, root: Path | None = None) -> dict[str, str]:
    """{name: sha256} of uv.lock and pyproject.toml when the project is uv-locked, else {}.

    A lock file that exists but is refused by the reader (a symlink leaving the repository, a
    FIFO, too big) is an error, not silently "unlocked"."""
    from mlproj.digest import sha256

    present = [n for n in LOCK_NAMES if os.path.lexists(project_dir / n)]
    if 'uv.lock' not in present or 'pyproject.toml' not in present:
        return {}
    return {n: sha256(_read_lock_file(project_dir, n, root)).hexdigest() for n in present}


def project_lock_files(project: Project) -> dict[str, str]:
    """The lock files uv installs for ``project``: a python_env project's uv.lock + pyproject.toml
    (``uv sync``, as MLflow does); none for other projects."""
    return lock_files(project.directory, project.root) if project.env.kind == 'python' else {}


def build(target: Path, spec: PythonEnv, interpreter: Interpreter, project_dir: Path, ctx: EnvContext,
          locked: dict[str, str]) -> dict:
    uv = uv_bin()
    env = base_env(ctx.pass_env)
    where = spec.source or str(project_dir)
    run_step([uv, 'venv', *quiet_flag(), '--no-project', '--python', interpreter.path, str(target)],
             'creating the virtual environment', cwd=project_dir, env=env, log=ctx.log, where=where, show=True)
    python = str(target / 'bin' / 'python')
    # uv compiles all of site-packages on the step that asks for it: ask on the last step only
    steps = [s for s in ('build', 'lock', 'deps') if {'build': spec.build_dependencies, 'lock': locked,
                                                       'deps': spec.dependencies}[s]]
    compile_on = steps[-1] if steps else None

    def compiled(step: str) -> list[str]:
        return ['--compile-bytecode'] if step == compile_on else []

    if spec.build_dependencies:
        run_step([uv, 'pip', 'install', '--python', python, *compiled('build'),
                  *requirement_args(spec.build_dependencies)],
                 'installing build_dependencies', cwd=project_dir, env=env, log=ctx.log, where=where, show=True)
    if locked:
        with tempfile.TemporaryDirectory(prefix='mlproj-uvlock-') as tmp:
            for name in locked:
                (Path(tmp) / name).write_bytes(_read_lock_file(project_dir, name, None))
            sync_env = dict(env, UV_PROJECT_ENVIRONMENT=str(target))
            run_step([uv, 'sync', '--frozen', '--no-dev', '--no-install-project', '--python', python,
                      *compiled('lock')],
                     'installing uv.lock', cwd=Path(tmp), env=sync_env, log=ctx.log,
                     where=str(project_dir / 'uv.lock'), show=True)
    if spec.dependencies:
        run_step([uv, 'pip', 'install', '--python', python, *compiled('deps'), *requirement_args(spec.dependencies)],
                 'installing dependencies', cwd=project_dir, env=env, log=ctx.log, where=where, show=True)
    return {}


def prepare(project: Project, ctx: EnvContext) -> VenvEnvironment:
    return prepare_venv(project, ctx, MANAGER, build_fn=build, installer=install_python,
                        locked=project_lock_files(project))
