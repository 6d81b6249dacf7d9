"""The key under which the action caches prepared environments (``actions/cache``).

For the uv and virtualenv managers the key *is* mlproj's own environment name
(``<manager>-<content hash>``, the hash of Python version, platform, dependencies, referenced
files and lock files, computed by ``mlproj.envs``), prefixed with the runner's OS and
architecture.  When that hash cannot be known before the run (conda, or a Python that uv would
install first) the key falls back to a SHA-256 of the files that define the environment.  A
project without an environment, or run with the local or docker manager, has nothing to cache.
With an entry point given, the key is that of the environment it runs in (its own python_env /
conda_env / docker_env when it declares one, else the project's).
The cached directory is mlproj's environment store (``MLPROJ_ENV_ROOT``, default
``<cache dir>/envs``).
"""
from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path
from typing import NamedTuple

# Files next to the env file that change what gets installed (fallback digest only).
COMPANION_GLOBS = ('requirements*.txt', 'uv.lock', 'pylock*.toml', 'constraints*.txt')


class CacheKey(NamedTuple):
    key: str
    restore_prefix: str
    path: str
    manager: str
    name: str                    # mlproj's environment name, or '<manager>-files-<digest>' (fallback)


def env_files(project) -> list[Path]:
    """The files whose content defines ``project``'s environment, sorted."""
    env = project.env
    if env.kind in ('none', 'docker') or env.path is None:
        return []
    files = {Path(env.path)}
    directory = Path(env.path).parent
    for pattern in COMPANION_GLOBS:
        files.update(p for p in directory.glob(pattern) if p.is_file())
    return sorted(files)


def files_digest(project) -> str:
    from mlproj import safefile

    root = project.root or safefile.find_root(project.directory)
    h = hashlib.sha256()
    for path in env_files(project):
        rel = os.path.relpath(path, project.directory).replace(os.sep, '/')
        h.update(rel.encode('utf-8', 'surrogateescape') + b'\0')
        try:  # through the project-file reader: a FIFO or a symlink out of the repository is not read
            h.update(safefile.sha256(path, root).encode() + b'\0')
        except safefile.Refused:
            h.update(b'refused\0')
    return h.hexdigest()


def env_name(project, manager: str) -> str | None:
    """mlproj's own environment name for a venv manager, without building anything."""
    if manager not in ('uv', 'virtualenv'):
        return None
    try:
        from mlproj.envs import envfiles, venv

        spec = envfiles.project_python_env(project)
        interpreter = venv.choose_interpreter(spec, None)  # never install a Python here
        locked = {}
        if manager == 'uv':
            from mlproj.envs.uv import project_lock_files

            locked = project_lock_files(project)
        _digest, name = venv.venv_key(project, manager, spec, interpreter, locked)
    except Exception:  # an interpreter uv would install first, or a change in mlproj.envs: fall back
        return None
    return name


def key_for(project, manager: str) -> CacheKey | None:
    """None when there is nothing to cache (no env file, local or docker manager)."""
    from mlproj.envs.store import env_root

    if manager in ('local', 'docker') or not env_files(project):
        return None
    system = platform.system().lower() or 'unknown'
    arch = platform.machine().lower() or 'unknown'
    prefix = f'mlproj-env-{system}-{arch}-{manager}-'
    name = env_name(project, manager) or f'{manager}-files-{files_digest(project)[:24]}'
    return CacheKey(f'mlproj-env-{system}-{arch}-{name}', prefix, str(env_root()), manager, name)


def compute(uri: str, version: str | None, env_manager: str | None,
            entry_point: str | None = None) -> dict[str, str]:
    """Outputs for the action: ``cache`` (true/false), ``key``, ``restore-prefix``, ``path``, ``reason``."""
    from mlproj import envs, source, spec
    from mlproj.ci import gha
    from mlproj.ci.runstep import resolve_source
    from mlproj.errors import MlprojError

    ctx = gha.ActionsContext.from_env()
    cwd = os.getcwd()
    src = resolve_source(uri, version, ctx, cwd)
    out = {'cache': 'false', 'key': '', 'restore-prefix': '', 'path': '', 'reason': ''}
    try:
        resolved = source.resolve(src.uri, src.version, cwd=cwd)
        try:
            project = spec.load_project(resolved.project_dir, root=resolved.root)
            if entry_point:
                project = project.for_entry_point(entry_point)
            manager = envs.select_manager(project, env_manager)
            key = key_for(project, manager)
        finally:
            resolved.cleanup()
    except MlprojError as e:  # the run step reports the real error; no cache is all we decide here
        out['reason'] = f'project not readable: {e}'
        return out
    if key is None:
        out['reason'] = 'nothing to cache (no environment file, or the local/docker env manager)'
        return out
    out.update({'key': key.key, 'restore-prefix': key.restore_prefix, 'path': key.path})
    if not ctx.cache_allowed:
        out['reason'] = f'caching is off for {ctx.event_name or "tag"} events (cache poisoning boundary)'
        return out
    out['cache'] = 'true'
    return out
