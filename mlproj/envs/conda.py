"""``--env-manager conda``: conda, mamba or micromamba, with MLflow's naming and activation.

* Executable: ``$MLFLOW_CONDA_HOME/bin/conda``, else ``dirname($CONDA_EXE)/conda``, else
  ``conda`` on PATH; when there is no conda, ``mamba`` then ``micromamba`` on PATH.
  ``MLFLOW_CONDA_CREATE_ENV_CMD`` (e.g. ``mamba``) creates environments, looked up next to conda.
* Name: ``mlflow-<sha1 of the raw conda.yaml text>``, MLflow's, so environments made by
  ``mlflow run`` are reused and the other way round.
* Create: ``<create-cmd> env create -n <name> --file <conda.yaml>`` (micromamba adds ``--yes``);
  on failure ``<conda> remove --yes --name <name> --all``.  A file lock per name makes
  concurrent first runs create it once (MLflow races, #2201).
* Reuse: a record in the env store holds the environment's prefix; a ready env costs one
  ``stat``.  Without a record, ``<conda> env list --json`` finds environments made elsewhere.
* Activation (conda): ``source <conda>/../etc/profile.d/conda.sh && conda activate <name> 1>&2``
  when ``CONDA_EXE`` or ``MLFLOW_CONDA_HOME`` is set, else ``source <bin>/activate <name> 1>&2``;
  mamba and micromamba run the command with ``<exe> run -n <name>``.
* Lock: the exact package set, ``<conda|mamba> list --explicit --md5 --prefix <prefix>``
  (``micromamba env export --explicit --md5 --prefix``): conda's own explicit-spec format (one
  package URL with its ``#md5`` per line after ``@EXPLICIT``), which ``conda create --name X --file
  LOCK`` rebuilds exactly.  It is taken once per environment (kept beside the record in the env
  store, refreshed when the record's prefix changes), logged as the run artifact
  ``mlproj/conda.explicit.txt`` and tagged ``mlproj.env.lock_sha256``; a tool that cannot list is a
  warning, the run goes on without a lock.  Verified against a strict fake of the CLI only: no
  conda can be installed on the machines this is developed on.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mlproj import childenv, safefile
from mlproj.envs import EnvContext
from mlproj.envs.envfiles import load_conda_env
from mlproj.envs.store import RECORDS, EnvStore
from mlproj.envs.venv import announce, run_step, summarize
from mlproj.errors import EnvError
from mlproj.spec_model import Project

MANAGER = 'conda'
FLAVOURS = ('conda', 'mamba', 'micromamba')
LOCK_ARTIFACT = 'mlproj/conda.explicit.txt'
MAX_LOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class CondaTool:
    exe: str              # absolute path of conda / mamba / micromamba
    flavour: str          # 'conda', 'mamba', 'micromamba'
    create_exe: str       # what runs `env create`
    via_home: bool        # CONDA_EXE or MLFLOW_CONDA_HOME set: activate through conda.sh


def _which(name: str) -> str | None:
    return shutil.which(name)


def find_tool() -> CondaTool | None:
    home = os.environ.get('MLFLOW_CONDA_HOME')
    conda_exe = os.environ.get('CONDA_EXE')
    create_name = os.environ.get('MLFLOW_CONDA_CREATE_ENV_CMD') or 'conda'
    if home or conda_exe:
        bin_dir = Path(home) / 'bin' if home else Path(conda_exe).parent  # type: ignore[arg-type]
        exe = bin_dir / 'conda'
        create_path = bin_dir / create_name
        if not os.access(exe, os.X_OK):
            raise EnvError(f'Could not find Conda executable at {exe}; set MLFLOW_CONDA_HOME to the conda '
                           'installation directory or unset it')
        if not os.access(create_path, os.X_OK):
            raise EnvError(f'MLFLOW_CONDA_CREATE_ENV_CMD is {create_name!r} but {create_path} does not exist or is '
                           'not executable')
        return CondaTool(str(exe), 'conda', str(create_path), True)
    for flavour in FLAVOURS:
        found = _which(flavour)
        if found:
            create = found
            if flavour == 'conda' and create_name != 'conda':
                create = str(Path(found).parent / create_name)
                if not os.access(create, os.X_OK):
                    create = _which(create_name) or ''
                if not create:
                    raise EnvError(f'MLFLOW_CONDA_CREATE_ENV_CMD is {create_name!r} but no such executable '
                                   f'was found next to {found} or on PATH')
            return CondaTool(found, flavour, create, False)
    return None


def conda_available() -> bool:
    if os.environ.get('MLFLOW_CONDA_HOME') or os.environ.get('CONDA_EXE'):
        return True
    return any(_which(f) for f in FLAVOURS)


def env_name(conda_yaml_text: str) -> str:
    """MLflow's name for the environment of a conda.yaml."""
    return 'mlflow-' + hashlib.sha1(conda_yaml_text.encode('utf-8')).hexdigest()


@dataclass(frozen=True)
class CondaEnvironment:
    manager: str
    tag: str | None
    hash: str | None
    name: str
    prefix: Path
    tool: CondaTool
    lock_path: Path | None = None     # the explicit spec (see the module docstring)
    lock_sha256: str | None = None

    @property
    def extra_tags(self) -> dict[str, str]:
        from mlproj.tags import ENV_LOCK_SHA256

        return {ENV_LOCK_SHA256: self.lock_sha256} if self.lock_sha256 else {}

    @property
    def artifacts(self) -> dict[str, Path]:
        return {LOCK_ARTIFACT: self.lock_path} if self.lock_path and self.lock_sha256 else {}

    def argv(self, command: str, env: dict[str, str], cwd: Path) -> tuple[list[str], dict[str, str]]:
        child = dict(env)
        child.pop('VIRTUAL_ENV', None)
        name = shlex.quote(self.name)
        if self.tool.flavour != 'conda':
            return [self.tool.exe, 'run', '-n', self.name, 'bash', '-c', command], child
        if self.tool.via_home:
            conda_sh = Path(self.tool.exe).parent.parent / 'etc' / 'profile.d' / 'conda.sh'
            activate = f'source {shlex.quote(str(conda_sh))} && conda activate {name} 1>&2'
        else:
            activate = f'source {shlex.quote(str(Path(self.tool.exe).parent / "activate"))} {name} 1>&2'
        return ['bash', '-c', f'{activate} && {command}'], child


def _list_envs(tool: CondaTool) -> list[str]:
    try:
        out = subprocess.run([tool.exe, 'env', 'list', '--json'], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=300)
    except (OSError, subprocess.SubprocessError) as e:
        raise EnvError(f'cannot run {tool.exe} env list: {e}') from None
    if out.returncode != 0:
        raise EnvError(f'{tool.flavour} env list failed: {summarize(out.stdout + out.stderr)}', tool.exe)
    try:
        envs = json.loads(out.stdout).get('envs', [])
    except (ValueError, AttributeError):
        raise EnvError(f'{tool.flavour} env list --json printed no JSON', tool.exe) from None
    return [str(e) for e in envs]


def _find_prefix(tool: CondaTool, name: str) -> Path | None:
    for prefix in _list_envs(tool):
        if os.path.basename(prefix.rstrip('/')) == name:
            return Path(prefix)
    return None


def prepare(project: Project, ctx: EnvContext) -> CondaEnvironment:
    if project.env.kind != 'conda' or project.env.path is None:
        raise EnvError('conda can only prepare a project with a conda_env (conda.yaml)',
                       str(project.mlproject_path or project.directory))
    tool = find_tool()
    if tool is None:
        raise EnvError('no conda, mamba or micromamba executable found on PATH (or via MLFLOW_CONDA_HOME / '
                       'CONDA_EXE); install one, or use --env-manager uv to map conda.yaml onto PyPI',
                       str(project.env.path))
    path = project.env.path
    load_conda_env(path, project.root)  # a malformed file fails here with file:line:col, before conda sees it
    try:
        text = safefile.read_text(path, project.root or safefile.find_root(project.directory),
                                  what='environment file')
    except safefile.Refused as e:
        raise EnvError(e.message, str(path)) from None
    except UnicodeDecodeError as e:
        raise EnvError(f'environment file is not UTF-8 text (byte {e.start})', str(path)) from None
    name = env_name(text)
    digest = hashlib.sha256(text.encode('utf-8')).hexdigest()
    store = EnvStore()
    record_name = f'conda-{name}'

    def ready() -> Path | None:
        rec = store.read_record(record_name)
        if rec and os.path.isdir(os.path.join(rec.get('path', ''), 'conda-meta')):
            return Path(rec['path'])
        return None

    prefix = ready()
    if prefix is None:
        with store.locked(record_name, ctx.log):
            prefix = ready() or _find_prefix(tool, name)
            if prefix is None:
                announce(ctx, f'Creating conda environment {name}')
                argv = [tool.create_exe, 'env', 'create', '-n', name, '--file', str(path)]
                if Path(tool.create_exe).name == 'micromamba':
                    argv.append('--yes')
                try:
                    run_step(argv, f'{Path(tool.create_exe).name} env create', cwd=project.directory,
                             log=ctx.log, where=str(path), env=childenv.environment('build', pass_env=ctx.pass_env))
                except EnvError:
                    subprocess.run([tool.exe, 'remove', '--yes', '--name', name, '--all'],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    raise
                prefix = _find_prefix(tool, name)
                if prefix is None:
                    raise EnvError(f'{tool.flavour} reported success but environment {name} is not listed',
                                   str(path))
            store.write_record(record_name, {'manager': MANAGER, 'hash': digest, 'path': str(prefix),
                                             'conda_env_name': name, 'tool': tool.exe, 'source': str(path)})
    lock_path, lock_sha = _explicit_lock(store, record_name, tool, prefix, ctx)
    return CondaEnvironment(MANAGER, MANAGER, digest, name, prefix, tool, lock_path, lock_sha)


def list_explicit_argv(tool: CondaTool, prefix: Path) -> list[str]:
    if tool.flavour == 'micromamba':
        return [tool.exe, 'env', 'export', '--explicit', '--md5', '--prefix', str(prefix)]
    return [tool.exe, 'list', '--explicit', '--md5', '--prefix', str(prefix)]


def _explicit_lock(store: EnvStore, record_name: str, tool: CondaTool, prefix: Path,
                   ctx: EnvContext) -> tuple[Path | None, str | None]:
    """(path, sha256) of the environment's explicit spec, taken once per prefix; (None, None) with a
    warning when the tool cannot list it."""
    from mlproj.cachedir import write_text_atomic

    lock_path = store.root / RECORDS / f'{record_name}.explicit.txt'
    rec = store.read_record(record_name) or {}
    try:
        if rec.get('lock_prefix') == str(prefix) and lock_path.stat().st_size <= MAX_LOCK_BYTES:
            data = lock_path.read_bytes()
            if hashlib.sha256(data).hexdigest() == rec.get('lock_sha256'):
                return lock_path, rec['lock_sha256']
    except OSError:
        pass
    argv = list_explicit_argv(tool, prefix)
    try:
        out = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=300,
                             env=childenv.environment('build', pass_env=ctx.pass_env))
    except (OSError, subprocess.SubprocessError) as e:
        return _no_lock(ctx, f'cannot run {Path(argv[0]).name} {argv[1]}: {e}')
    text = out.stdout.decode('utf-8', 'replace')
    if out.returncode != 0 or '@EXPLICIT' not in text.splitlines() or len(out.stdout) > MAX_LOCK_BYTES:
        why = summarize(out.stderr.decode('utf-8', 'replace') + text) if out.returncode else 'no @EXPLICIT list'
        return _no_lock(ctx, f'{Path(argv[0]).name} {" ".join(argv[1:3])} gave no explicit list ({why})')
    try:
        write_text_atomic(lock_path, text)
        sha = hashlib.sha256(text.encode('utf-8')).hexdigest()
        store.write_record(record_name, dict(rec, lock_prefix=str(prefix), lock_sha256=sha))
    except (OSError, EnvError) as e:
        return _no_lock(ctx, f'cannot keep the environment lock: {e}')
    return lock_path, sha


def _no_lock(ctx: EnvContext, why: str) -> tuple[None, None]:
    from mlproj.safeout import printable  # `why` quotes the tool's output

    print(printable(f'mlproj: warning: the conda environment is not locked: {why}'), file=ctx.log, flush=True)
    return None, None
