"""The key under which the action caches prepared environments (``actions/cache``).

The key follows mlproj's own environment identity: the env manager plus a SHA-256 of the files
that define the environment (the declared/conventional env file and the lock/requirement files
next to it), qualified by OS, architecture, the runner's Python and the mlproj version (an env
built by one mlproj layout is not reused by another).  A project without an environment (or
run with ``--env-manager local``) has nothing to cache.
"""
from __future__ import annotations

import hashlib
import os
import platform
import sys
from pathlib import Path
from typing import NamedTuple

# Files next to the env file that change what gets installed.
COMPANION_GLOBS = ('requirements*.txt', 'uv.lock', 'pylock*.toml', 'constraints*.txt')


class CacheKey(NamedTuple):
    key: str
    restore_prefix: str
    path: str
    manager: str
    digest: str


def cache_root() -> Path:
    explicit = os.environ.get('MLPROJ_CACHE_DIR')
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / 'mlproj'


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


def digest(project) -> str:
    h = hashlib.sha256()
    for path in env_files(project):
        rel = os.path.relpath(path, project.directory).replace(os.sep, '/')
        h.update(rel.encode() + b'\0')
        h.update(path.read_bytes() + b'\0')
    return h.hexdigest()


def key_for(project, manager: str) -> CacheKey | None:
    """None when there is nothing to cache (no env file, local or docker manager)."""
    from mlproj import __version__

    if manager in ('local', 'docker') or not env_files(project):
        return None
    arch = platform.machine().lower() or 'unknown'
    system = platform.system().lower() or 'unknown'
    py = f'py{sys.version_info[0]}.{sys.version_info[1]}'
    prefix = f'mlproj-env-{system}-{arch}-{py}-mlproj{__version__}-{manager}-'
    d = digest(project)
    return CacheKey(prefix + d[:32], prefix, str(cache_root() / 'envs'), manager, d)


def compute(uri: str, version: str | None, env_manager: str | None) -> dict[str, str]:
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
            project = spec.load_project(resolved.project_dir)
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
