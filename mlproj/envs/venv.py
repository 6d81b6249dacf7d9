"""What the uv and virtualenv managers share: the spec, the cache key, the prepared venv.

``prepare_venv`` is the one find-or-build of a venv: the project's python_env spec (its conda.yaml
mapped onto PyPI by ``envfiles``), an interpreter, the cache key below, and the manager's own
``build_fn`` run at most once per key in the environment store (``mlproj.envs.store``).

The cache key is the sha256 of everything that determines the environment:

* the manager and the store format;
* the interpreter's implementation and full version (not its path) and the platform
  (``sys.platform``, machine, libc);
* the python_env spec (python, build_dependencies, dependencies) after conda -> PyPI mapping;
* the contents of every file a requirement line names (``-r`` / ``-c``, recursively) and of local
  path requirements (``./pkg``, ``-e ./pkg``);
* for uv, the project's ``uv.lock`` and ``pyproject.toml`` (they are installed with ``uv sync``);
* ``bytecode: compiled``: site-packages is byte-compiled at build time (uv ``--compile-bytecode``,
  pip ``--compile``), so envs built before that was done get a new key and are rebuilt once.

Each built venv also records what it holds, its exact lock (``mlproj.envs.lock``), in its store
entry; the run is tagged with its hash and logs it as an artifact.  ``prepare_from_lock``
(``mlproj reproduce``) builds a venv from such a lock instead of the spec; its key is the
manager, the interpreter, the platform and the lock's sha256.
"""
from __future__ import annotations

import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from mlproj import safefile
from mlproj.digest import sha256
from mlproj.envs import EnvContext
from mlproj.envs import interpreters as interp
from mlproj.envs.envfiles import FILE_OPTIONS, PythonEnv, project_python_env
from mlproj.envs.store import FORMAT, EnvStore, content_hash
from mlproj.errors import EnvError
from mlproj.spec_model import Project

# build_fn(target, spec, interpreter, project_dir, ctx, locked) fills the venv at ``target``
BuildFn = Callable[[Path, PythonEnv, interp.Interpreter, Path, EnvContext, dict[str, str]], object]

_SKIP_DIRS = {'.git', '__pycache__', '.venv', 'build', 'dist', '.tox', '.mypy_cache', '.pytest_cache'}
_ANSI = re.compile(r'\x1b\[[0-9;?]*[A-Za-z]')


@dataclass(frozen=True)
class VenvEnvironment:
    manager: str
    tag: str | None
    hash: str | None
    path: Path
    python: str = ''          # version of the interpreter
    lock_sha256: str | None = None   # sha256 of the env's exact lock (mlproj.envs.lock), None if not recorded

    @property
    def extra_tags(self) -> dict[str, str]:
        from mlproj.tags import ENV_LOCK_SHA256

        return {ENV_LOCK_SHA256: self.lock_sha256} if self.lock_sha256 else {}

    @property
    def artifacts(self) -> dict[str, Path]:
        from mlproj.envs.lock import ARTIFACT_PATH, LOCK_FILE

        return {ARTIFACT_PATH: self.path / LOCK_FILE} if self.lock_sha256 else {}

    def argv(self, command: str, env: dict[str, str], cwd: Path) -> tuple[list[str], dict[str, str]]:
        child = dict(env)
        child.pop('PYTHONHOME', None)
        child.pop('CONDA_PREFIX', None)
        child['VIRTUAL_ENV'] = str(self.path)
        child['PATH'] = str(self.path / 'bin') + os.pathsep + env.get('PATH', os.defpath)
        return ['bash', '-c', command], child


def choose_interpreter(spec: PythonEnv, installer=None) -> interp.Interpreter:
    """Find the interpreter for ``spec``; ``installer(spec) -> str | None`` may install one (uv)."""
    where = spec.python_where or spec.source
    found = interp.find(spec.python, where)
    if found is not None:
        return found
    candidates = interp.discover()
    reason = 'no installer available'
    if installer is not None:
        reason = installer(spec.python)
        if reason is None:
            candidates = interp.discover()
            found = interp.find(spec.python, where, candidates)
            if found is not None:
                return found
            reason = 'the installed Python was not found afterwards'
    raise EnvError(f'no installed Python matches python {spec.python!r} (installed: {interp.describe(candidates)}); '
                   f'it could not be installed: {reason}', where)


def platform_tag() -> dict:
    libc = platform.libc_ver()
    return {'platform': sys.platform, 'machine': platform.machine(), 'libc': '-'.join(x for x in libc if x)}


def hash_file(path: Path, root: Path | None = None) -> str:
    """SHA-256 of a regular file through the project-file reader (never blocks on a FIFO)."""
    try:
        return safefile.sha256(path, root)
    except safefile.Refused as e:
        raise EnvError(e.message, str(path)) from None


def _hash_tree(root: Path) -> str:
    h = sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.endswith('.egg-info'))
        for n in sorted(filenames):
            p = Path(dirpath) / n
            try:
                digest = hash_file(p)
            except EnvError:  # FIFOs, sockets, dangling links: not content
                continue
            h.update(f'{p.relative_to(root).as_posix()}\0{digest}\n'.encode())
    return h.hexdigest()


def _split_line(line: str) -> list[str]:
    """A requirement line as command-line arguments (pip/uv accept the same syntax there)."""
    text = line.strip()
    if text.startswith('-'):
        try:
            return shlex.split(text, comments=True)
        except ValueError:
            return [text]
    return [text]


def requirement_args(lines: tuple[str, ...] | list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        out.extend(_split_line(line))
    return out


def _local_path(word: str, base: Path) -> Path | None:
    if word.startswith('file:'):
        word = word[len('file:'):].lstrip('/')
        word = '/' + word
    if word.startswith(('.', '/')) or word.startswith('~'):
        p = (base / os.path.expanduser(word)).resolve()
        return p if p.exists() else None
    return None


def referenced_files(lines: tuple[str, ...], base: Path, seen: set[Path] | None = None,
                     root: Path | None = None) -> dict[str, str]:
    """{relative or absolute path: content hash} for files and local packages the lines reference.

    ``-r`` / ``-c`` files are parsed, so they must be regular files inside ``root`` (the
    repository root; default: found from ``base``), at most ``MLPROJ_MAX_FILE_BYTES``.  Local
    packages are only hashed (never parsed or printed), wherever they are.
    """
    seen = seen if seen is not None else set()
    root = root if root is not None else safefile.find_root(base)
    out: dict[str, str] = {}
    for line in lines:
        args = _split_line(line)
        i = 0
        while i < len(args):
            word = args[i]
            ref: str | None = None
            if word in FILE_OPTIONS and i + 1 < len(args):
                ref, i = args[i + 1], i + 1
            else:
                for opt in FILE_OPTIONS:
                    if opt.startswith('--') and word.startswith(opt + '='):
                        ref = word[len(opt) + 1:]
                    elif not opt.startswith('--') and word.startswith(opt) and len(word) > len(opt) \
                            and not word.startswith('--'):
                        ref = word[len(opt):]
            if ref is not None:
                path = (base / ref).resolve()
                if path in seen:
                    i += 1
                    continue
                seen.add(path)
                try:
                    data = safefile.read_bytes(base / ref, root, what=f'requirements file {ref!r}')
                except safefile.Refused as e:
                    raise EnvError(e.message, str(base)) from None
                out[str(path)] = sha256(data).hexdigest()
                nested = tuple(data.decode('utf-8', 'replace').splitlines())
                nested = tuple(x for x in nested if x.strip() and not x.lstrip().startswith('#'))
                out.update(referenced_files(nested, path.parent, seen, root))
            else:
                local = _local_path(word.split('#', 1)[0].split(' @ ')[-1].strip(), base)
                if local is not None and local not in seen:
                    seen.add(local)
                    out[str(local)] = hash_file(local) if local.is_file() else _hash_tree(local)
            i += 1
    return out


def key_payload(manager: str, spec: PythonEnv, interpreter: interp.Interpreter, project_dir: Path,
                extra: dict | None = None, root: Path | None = None) -> dict:
    lines = spec.build_dependencies + spec.dependencies
    files = referenced_files(lines, project_dir, root=root)
    # paths inside the project are recorded relative to it, so two checkouts share an environment
    rel = {}
    for p, digest in files.items():
        try:
            rel[Path(p).relative_to(project_dir.resolve()).as_posix()] = digest
        except ValueError:
            rel[p] = digest
    return {
        'format': FORMAT,
        'manager': manager,
        'python': {'implementation': interpreter.implementation, 'version': interpreter.version_text},
        'platform': platform_tag(),
        'spec': {'build_dependencies': list(spec.build_dependencies), 'dependencies': list(spec.dependencies)},
        'files': rel,
        'bytecode': 'compiled',
        **(extra or {}),
    }


def run_step(argv: list[str], what: str, *, cwd: Path, env: dict[str, str] | None = None,
             log: TextIO | None = None, where: str = '', show: bool = False) -> str:
    """Run one build step; on failure print its output and raise a one-line ``EnvError``.

    ``show``: an installer step whose progress the user sees while it runs (``mlproj.envs.steps``:
    live on a terminal, summary lines elsewhere, everything with ``--verbose``, nothing with
    ``--quiet``) on ``log`` (default ``sys.stderr``); otherwise the output is captured and shown
    only on failure.  Either way the whole output is returned and summarized on failure.

    ``env`` defaults to the build environment of ``mlproj.childenv`` (never ``os.environ`` as is:
    build steps run project code)."""
    if env is None:
        from mlproj import childenv

        env = childenv.environment('build')
    shown = False
    try:
        if show:
            from mlproj.envs import steps

            stream = log if log is not None else sys.stderr
            output = steps.policy(stream)
            shown = output.show == 'all'
            code, text = steps.run(argv, cwd=str(cwd), env=env, stream=stream, output=output)
        else:
            proc = subprocess.run(argv, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, errors='replace')
            code, text = proc.returncode, proc.stdout or ''
    except OSError as e:
        raise EnvError(f'{what}: cannot run {argv[0]!r}: {e.strerror}', where) from None
    if code != 0:
        if log is not None and text.strip() and not shown:   # shown: it is on the screen already
            log.write(text if text.endswith('\n') else text + '\n')
            log.flush()
        raise EnvError(f'{what} failed: {summarize(text) or f"exit code {code}"}', where)
    return text


def quiet_flag(*, show_all: bool = False) -> list[str]:
    """``['--quiet']`` for an installer step unless its output is shown: with ``show_all`` (pip,
    whose summary needs its normal output) unless ``--quiet`` is on; else (``uv venv``, whose
    normal output is only chatter) unless ``--verbose`` is on."""
    from mlproj import quiet, verbose

    if show_all:
        return ['--quiet'] if quiet.active() else []
    return [] if verbose.active() else ['--quiet']


def summarize(output: str) -> str:
    """The informative part of a uv/pip error as one line."""
    lines = []
    for raw in _ANSI.sub('', output).splitlines():
        line = raw.strip().lstrip('×╰─▶│├┬ ').strip()
        if line:
            lines.append(line)
    picked = [ln for ln in lines if ln.lower().startswith(('error:', 'because', 'no solution', 'hint:'))
              or 'no matching distribution' in ln.lower() or 'could not find a version' in ln.lower()
              or 'unsatisfiable' in ln.lower()]
    chosen = picked or lines[-2:]
    text = ' '.join(chosen[:3])
    return text[:600]


def announce(ctx: EnvContext, text: str) -> None:
    print(f'=== {text} ===', file=ctx.log, flush=True)


def base_env(pass_env: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment for build steps: the build phase of ``mlproj.childenv`` (no credentials of
    mlproj, the CI runner, the tracking or artifact store), minus anything pointing at another venv."""
    from mlproj import childenv

    env = childenv.environment('build', pass_env=pass_env)
    for name in ('VIRTUAL_ENV', 'PYTHONHOME', 'PYTHONPATH', 'CONDA_PREFIX', 'UV_PROJECT_ENVIRONMENT'):
        env.pop(name, None)
    return env


def venv_key(project: Project, manager: str, spec: PythonEnv, interpreter: interp.Interpreter,
             locked: dict[str, str] | None = None) -> tuple[str, str]:
    """(content hash, store name) of the venv ``manager`` makes for ``project``: what
    ``prepare_venv`` looks up and builds, and what ``mlproj ci env-key`` names without building."""
    payload = key_payload(manager, spec, interpreter, project.directory, {'lock': locked} if locked else None,
                          root=project.root)
    digest = content_hash(payload)
    return digest, f'{manager}-{digest[:24]}'


def prepare_venv(project: Project, ctx: EnvContext, manager: str, *, build_fn: BuildFn,
                 installer: Callable[[str | None], str | None] | None, locked: dict[str, str] | None = None,
                 store: EnvStore | None = None) -> VenvEnvironment:
    """Find or build the venv for ``project`` with ``build_fn`` (shared by uv and virtualenv).

    ``installer(version) -> reason | None`` may install a missing interpreter (uv); ``locked`` is
    ``{name: sha256}`` of the lock files ``build_fn`` installs (uv's ``uv.lock``), part of the key.

    Every environment records its exact lock (``mlproj.envs.lock``) in its store entry when it is
    built (or, for entries built before locks existed, on first reuse).  With ``ctx.env_lock``
    (``mlproj reproduce``) the venv is built from that lock instead of the spec, keyed by the
    lock's hash; a project that ships ``uv.lock`` is built from its ``uv.lock`` as always."""
    if ctx.env_lock is not None and not locked:
        return prepare_from_lock(project, ctx, manager, installer=installer, store=store)
    spec = project_python_env(project)
    interpreter = choose_interpreter(spec, installer)
    project_dir = project.directory
    locked = locked or {}
    digest, name = venv_key(project, manager, spec, interpreter, locked)
    store = store or EnvStore()

    def do_build(target: Path) -> dict:
        announce(ctx, f'Creating {manager} environment {name} (Python {interpreter.version_text})')
        build_fn(target, spec, interpreter, project_dir, ctx, locked)
        meta = {'manager': manager, 'hash': digest, 'python': interpreter.version_text,
                'interpreter': interpreter.path, 'project': str(project_dir), 'spec': spec.as_dict(),
                'source': spec.source}
        lock = _record_lock(target, interpreter, ctx, fresh=True)
        if lock is not None:
            meta['lock_sha256'] = lock.sha256
        return meta

    path, _built = store.ensure(name, do_build, log=ctx.log)
    lock = _record_lock(path, interpreter, ctx, fresh=False)
    return VenvEnvironment(manager, manager, digest, path, interpreter.version_text,
                           lock.sha256 if lock is not None else None)


def _record_lock(env_dir: Path, interpreter: interp.Interpreter, ctx: EnvContext, *, fresh: bool):
    """The env's lock (recorded now when ``fresh`` or missing); None, with a warning, if it cannot be."""
    from mlproj.envs import lock

    if not fresh:
        found = lock.read(env_dir)   # the reuse path: one small file read
        if found is not None:
            return found
    try:
        return lock.record(env_dir, interpreter.version_text, interpreter.implementation, base_env(ctx.pass_env))
    except EnvError as e:
        print(f'mlproj: warning: the exact environment lock was not recorded: {e.message}', file=ctx.log, flush=True)
        return None


def prepare_from_lock(project: Project, ctx: EnvContext, manager: str, *,
                      installer: Callable[[str | None], str | None] | None,
                      store: EnvStore | None = None) -> VenvEnvironment:
    """Build (or reuse) the venv that holds exactly the set of ``ctx.env_lock``.

    The interpreter is the recorded version (X.Y.Z) when installed (or installable by uv), else
    the newest of the same X.Y with a warning.  The store key is the manager, the interpreter, the
    platform and the lock's sha256: the project's spec no longer matters."""
    from mlproj.envs import lock as locks
    from mlproj.envs.envfiles import PythonEnv

    where = 'environment lock'
    lk = locks.parse(ctx.env_lock or b'', where)
    recorded = lk.python
    interpreter = None
    if recorded:
        interpreter = interp.find(recorded, where)
        if interpreter is None and installer is not None and installer(recorded) is None:
            interpreter = interp.find(recorded, where, interp.discover())
        if interpreter is None:
            minor = '.'.join(recorded.split('.')[:2])
            interpreter = interp.find(minor, where)
            if interpreter is not None:
                print(f'mlproj: warning: the lock was recorded on Python {recorded}, which is not installed; '
                      f'using Python {interpreter.version_text}', file=ctx.log, flush=True)
    if interpreter is None:
        interpreter = choose_interpreter(PythonEnv(python=recorded, source=where), installer)
    payload = {'format': FORMAT, 'manager': manager, 'from': 'lock', 'lock_sha256': lk.sha256,
               'python': {'implementation': interpreter.implementation, 'version': interpreter.version_text},
               'platform': platform_tag(), 'bytecode': 'compiled'}
    digest = content_hash(payload)
    name = f'{manager}-{digest[:24]}'
    store = store or EnvStore()
    env = base_env(ctx.pass_env)

    def do_build(target: Path) -> dict:
        announce(ctx, f'Creating {manager} environment {name} from the recorded lock {lk.sha256[:12]} '
                      f'(Python {interpreter.version_text})')
        _create_venv(manager, target, interpreter, project.directory, env, ctx)
        locks.install(lk, manager, target, project.directory, env, ctx.log, '')
        from mlproj.cachedir import write_text_atomic

        write_text_atomic(target / locks.LOCK_FILE, lk.text)   # the lock installed is the env's lock
        return {'manager': manager, 'hash': digest, 'python': interpreter.version_text,
                'interpreter': interpreter.path, 'project': str(project.directory), 'lock_sha256': lk.sha256,
                'source': where}

    path, _built = store.ensure(name, do_build, log=ctx.log)
    return VenvEnvironment(manager, manager, digest, path, interpreter.version_text, lk.sha256)


def _create_venv(manager: str, target: Path, interpreter: interp.Interpreter, cwd: Path, env: dict[str, str],
                 ctx: EnvContext) -> None:
    if manager == 'uv':
        from mlproj.envs.uv import uv_bin

        argv = [uv_bin(), 'venv', *quiet_flag(), '--no-project', '--python', interpreter.path, str(target)]
    else:
        import importlib.util

        if importlib.util.find_spec('virtualenv') is not None:
            argv = [sys.executable, '-m', 'virtualenv', *quiet_flag(), '--no-periodic-update', '--python',
                    interpreter.path, str(target)]
        else:
            argv = [interpreter.path, '-m', 'venv', str(target)]
    run_step(argv, 'creating the virtual environment', cwd=cwd, env=env, log=ctx.log, where='environment lock',
             show=True)
