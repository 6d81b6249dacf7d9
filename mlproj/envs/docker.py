"""``docker_env``: run the entry point in a container, with the docker or podman CLI.

* Engine: ``MLPROJ_CONTAINER_ENGINE`` (``docker``, ``podman`` or a path), else ``docker`` on PATH,
  else ``podman``.
* Image: ``docker_env.image`` as is (pulled when missing), with the project directory mounted at
  ``/mlflow/projects/code`` as working directory (MLflow mounts nothing: #8077).  With
  ``--build-image`` an image ``FROM`` it with the project copied in is built, tagged
  ``mlproj-<name>:<content hash>`` (so an unchanged project is never rebuilt) from a context that
  honours ``.dockerignore`` and never contains ``.git`` (MLflow sends everything: #2016).
* ``volumes`` become ``-v``; ``environment`` names are copied from the host, ``[name, value]``
  pairs set; ``-A/--docker-args`` become ``--name value`` / ``-x value`` / bare flags.  Values go
  through the client's environment (``-e NAME``), never the command line.
* Tracking: an HTTP(S) tracking server is reached through ``--network host``; a sqlite or file
  store is mounted at its own absolute path, so the URI and the run's artifact paths stay valid.
* The command runs as ``sh -c <command>`` inside the container (MLflow let the host shell
  interpret it).  The container is named ``mlproj-<run id>``, started with ``--rm --init``, and
  removed by a watchdog if the client dies (``mlproj.envs.container``).
* Files: ``.dockerignore`` and every context file are read through ``mlproj.safefile`` (inside
  the repository root, regular files only, never blocking); the Dockerfile is mlproj's own.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlproj import safefile
from mlproj.envs import EnvContext
from mlproj.envs.store import EnvStore
from mlproj.envs.venv import announce, run_step
from mlproj.errors import EnvError
from mlproj.spec_model import Project
from mlproj.tags import DOCKER_IMAGE_ID, DOCKER_IMAGE_URI

MANAGER = 'docker'
CODE_DIR = '/mlflow/projects/code'
# run variables passed into the container (when set), besides docker_env.environment
PASSED_VARS = ('MLFLOW_RUN_ID', 'MLFLOW_TRACKING_URI', 'MLFLOW_EXPERIMENT_ID', 'MLFLOW_ALLOW_FILE_STORE',
               'MLPROJ_ENV_MANAGER', 'MLFLOW_TRACKING_TOKEN', 'MLFLOW_TRACKING_USERNAME',
               'MLFLOW_TRACKING_PASSWORD', 'MLFLOW_TRACKING_INSECURE_TLS')
DATABRICKS_VARS = ('DATABRICKS_HOST', 'DATABRICKS_TOKEN', 'DATABRICKS_USERNAME', 'DATABRICKS_PASSWORD',
                   'DATABRICKS_INSECURE', 'DATABRICKS_CLIENT_ID', 'DATABRICKS_CLIENT_SECRET')


def find_engine() -> str:
    from mlproj.settings import env_value

    chosen = env_value('MLPROJ_CONTAINER_ENGINE')
    if chosen:
        found = shutil.which(chosen)
        if not found:
            raise EnvError(f'MLPROJ_CONTAINER_ENGINE is {chosen!r} but no such executable was found')
        return found
    for name in ('docker', 'podman'):
        found = shutil.which(name)
        if found:
            return found
    raise EnvError('no container engine found: install docker or podman (or set MLPROJ_CONTAINER_ENGINE) to run a '
                   'docker_env project')


def _engine_call(engine: str, args: list[str], what: str, where: str = '') -> subprocess.CompletedProcess:
    try:
        return subprocess.run([engine, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError as e:
        raise EnvError(f'{what}: cannot run {engine!r}: {e.strerror}', where) from None


def image_id(engine: str, image: str) -> str | None:
    proc = _engine_call(engine, ['image', 'inspect', '--format', '{{.Id}}', image], 'inspecting the image')
    if proc.returncode != 0:
        if 'cannot connect' in proc.stderr.lower() or 'is the docker daemon running' in proc.stderr.lower():
            raise EnvError(f'the container engine is not running: {proc.stderr.strip().splitlines()[-1]}', engine)
        return None
    return proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else None


# --------------------------------------------------------------------------------------------
# .dockerignore


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == '*':
            if pattern.startswith('**', i):
                i += 2
                if i < n and pattern[i] == '/':
                    i += 1
                    out.append('(?:.*/)?')
                else:
                    out.append('.*')
                continue
            out.append('[^/]*')
        elif c == '?':
            out.append('[^/]')
        elif c == '[':
            j = pattern.find(']', i)
            if j == -1:
                out.append(re.escape(c))
            else:
                cls = pattern[i + 1:j]
                out.append('[' + ('^' + cls[1:] if cls.startswith(('!', '^')) else cls) + ']')
                i = j
        elif c == '\\' and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile('^' + ''.join(out) + '(?:/.*)?$')


def read_dockerignore(project_dir: Path, root: Path | None = None) -> list[tuple[bool, re.Pattern[str]]]:
    rules: list[tuple[bool, re.Pattern[str]]] = []
    path = project_dir / '.dockerignore'
    if not os.path.lexists(path):
        return rules
    try:
        text = safefile.read_text(path, root if root is not None else safefile.find_root(project_dir),
                                  what='.dockerignore', errors='replace')
    except safefile.Refused as e:
        raise EnvError(e.message, str(path)) from None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        negate = line.startswith('!')
        if negate:
            line = line[1:].strip()
        line = os.path.normpath(line.lstrip('/')).replace(os.sep, '/')
        if line in ('.', ''):
            continue
        rules.append((negate, _pattern_regex(line)))
    return rules


def _ignored(rel: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    ignored = False
    for negate, rx in rules:
        if rx.match(rel):
            ignored = not negate
    return ignored


def context_files(project_dir: Path, root: Path | None = None) -> list[str]:
    """Relative paths (files and symlinks) of the build context: .dockerignore honoured, .git never."""
    rules = read_dockerignore(project_dir, root)
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(project_dir):
        rel_dir = os.path.relpath(dirpath, project_dir)
        rel_dir = '' if rel_dir == '.' else rel_dir.replace(os.sep, '/') + '/'
        keep = []
        for d in sorted(dirnames):
            rel = rel_dir + d
            if d == '.git':
                continue
            if os.path.islink(os.path.join(dirpath, d)):
                if not _ignored(rel, rules):
                    out.append(rel)
                continue
            # a directory is only skipped outright when no exception pattern could re-include below it
            if _ignored(rel, rules) and not any(neg for neg, _ in rules):
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            rel = rel_dir + f
            if not _ignored(rel, rules):
                out.append(rel)
    return sorted(out)


def context_hash(project_dir: Path, files: list[str], base_id: str, dockerfile: str) -> str:
    h = hashlib.sha256()
    h.update(f'base\0{base_id}\ndockerfile\0{dockerfile}\n'.encode())
    for rel in files:
        p = project_dir / rel
        if p.is_symlink():
            h.update(f'L\0{rel}\0{os.readlink(p)}\n'.encode('utf-8', 'surrogateescape'))
            continue
        try:  # a FIFO, socket or device in the context is refused, never opened for reading
            digest = safefile.sha256(p, project_dir, what=f'build context file {rel!r}')
        except safefile.Refused as e:
            raise EnvError(e.message, str(project_dir)) from None
        executable = os.access(p, os.X_OK)
        h.update(f'F\0{rel}\0{int(executable)}\0{digest}\n'.encode('utf-8', 'surrogateescape'))
    return h.hexdigest()


def _repo_name(project: Project) -> str:
    raw = (project.name or project.directory.name or 'project').lower()
    name = re.sub(r'[^a-z0-9._-]+', '-', raw).strip('.-_') or 'project'
    return f'mlproj-{name}'[:100]


def build_image(engine: str, project: Project, base: str, base_id: str, ctx: EnvContext) -> tuple[str, str, str]:
    """Build (or reuse) the project image; returns (tag, image id, content hash)."""
    dockerfile = f'FROM {base}\nCOPY . {CODE_DIR}/\nWORKDIR {CODE_DIR}/\n'
    files = context_files(project.directory, project.root)
    digest = context_hash(project.directory, files, base_id, dockerfile)
    tag = f'{_repo_name(project)}:{digest[:12]}'
    existing = image_id(engine, tag)
    if existing:
        return tag, existing, digest
    store = EnvStore()
    with store.locked(f'docker-{digest[:24]}', ctx.log):
        existing = image_id(engine, tag)
        if existing:
            return tag, existing, digest
        announce(ctx, f'Building image {tag} from {base}')
        with tempfile.TemporaryDirectory(prefix='mlproj-build-') as tmp:
            context = Path(tmp) / 'context'
            context.mkdir()
            for rel in files:
                src, dst = project.directory / rel, context / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                if src.is_symlink():
                    os.symlink(os.readlink(src), dst)
                    continue
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)
            (Path(tmp) / 'Dockerfile').write_text(dockerfile, encoding='utf-8')
            run_step([engine, 'build', '--quiet', '--tag', tag, '--file', str(Path(tmp) / 'Dockerfile'),
                      str(context)], f'building image {tag}', cwd=Path(tmp), log=ctx.log,
                     where=str(project.mlproject_path or project.directory))
        built = image_id(engine, tag)
        if not built:
            raise EnvError(f'image {tag} was built but cannot be inspected', engine)
        store.write_record(f'docker-{digest[:24]}', {'manager': MANAGER, 'hash': digest, 'image': tag,
                                                     'image_id': built, 'engine': engine,
                                                     'project': str(project.directory)})
        return tag, built, digest


# --------------------------------------------------------------------------------------------
# tracking store access from inside the container


def tracking_access(uri: str | None) -> tuple[list[str], bool]:
    """(volume specs, use host network) so that ``uri`` works unchanged inside the container."""
    from mlproj.tracking import is_server_uri

    if not uri:
        return [], False
    if is_server_uri(uri):
        return [], True
    if uri.startswith('sqlite:///'):
        path = uri[len('sqlite:///'):].split('?', 1)[0]
        if path.startswith('/'):
            d = os.path.dirname(path)
            return [f'{d}:{d}'], False
        return [], False
    if uri.startswith('file:'):
        from urllib.parse import unquote, urlparse

        path = unquote(urlparse(uri).path)
        if path.startswith('/'):
            os.makedirs(path, exist_ok=True)
            return [f'{path}:{path}'], False
    if uri.startswith('/'):
        return [f'{uri}:{uri}'], False
    return [], False


def docker_arg_flags(args: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in args.items():
        flag = f'-{key}' if len(key) == 1 else f'--{key}'
        if value is True:
            out.append(flag)
        elif value is False or value is None:
            continue
        else:
            out += [flag, str(value)]
    return out


@dataclass(frozen=True)
class DockerEnvironment:
    manager: str
    tag: str | None
    hash: str | None
    engine: str
    image: str
    image_id: str
    container_name: str
    run_args: tuple[str, ...]            # everything between `run` and the image
    values: Mapping[str, str] = field(default_factory=dict)   # docker_env.environment pairs
    extra_tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def cleanup_argv(self) -> tuple[str, ...]:
        """Run by the local backend's supervisor when it had to kill the client (mlproj.supervisor)."""
        return (self.engine, 'rm', '-f', self.container_name)

    def argv(self, command: str, env: dict[str, str], cwd: Path) -> tuple[list[str], dict[str, str]]:
        child = dict(env)
        child.update(self.values)
        passed = [n for n in PASSED_VARS if n in child]
        if child.get('MLFLOW_TRACKING_URI', '').startswith('databricks'):
            passed += [n for n in DATABRICKS_VARS if n in child]
        env_flags: list[str] = []
        for n in list(dict.fromkeys(passed + list(self.values))):
            env_flags += ['-e', n]
        docker = [self.engine, 'run', '--rm', *self.run_args, *env_flags, self.image, 'sh', '-c', command]
        return [sys.executable, '-m', 'mlproj.envs.container', self.engine, self.container_name, '--', *docker], child


def prepare(project: Project, ctx: EnvContext) -> DockerEnvironment:
    spec = project.env.docker
    where = str(project.mlproject_path or project.directory)
    if spec is None or not spec.image:
        raise EnvError("docker_env needs an image (a string such as 'python:3.11-slim')", where)
    values: dict[str, str] = {}
    copied: list[str] = []
    for item in spec.environment:
        if isinstance(item, tuple):
            values[item[0]] = item[1]
        else:
            copied.append(item)
    missing = [n for n in copied if n not in os.environ]
    if missing:
        raise EnvError('docker_env.environment copies variables that are not set on this machine: '
                       + ', '.join(missing), where)
    engine = find_engine()
    base_id = image_id(engine, spec.image)
    if base_id is None:
        announce(ctx, f'Pulling image {spec.image}')
        run_step([engine, 'pull', spec.image], f'pulling image {spec.image}', cwd=project.directory, log=ctx.log,
                 where=where)
        base_id = image_id(engine, spec.image)
        if base_id is None:
            raise EnvError(f'image {spec.image} cannot be inspected after pulling it', where)
    args = dict(ctx.docker_args)
    name = str(args.pop('name', '') or '') or f'mlproj-{ctx.run_id or secrets.token_hex(8)}'
    run_args: list[str] = ['--name', name]
    from mlproj.settings import env_value

    if str(env_value('MLPROJ_CONTAINER_INIT')).strip() != '0':
        run_args.append('--init')
    if ctx.build_image:
        image, built_id, digest = build_image(engine, project, spec.image, base_id, ctx)
    else:
        image, built_id, digest = spec.image, base_id, base_id.split(':', 1)[-1]
        run_args += ['-v', f'{project.directory.resolve()}:{CODE_DIR}']
    run_args += ['-w', CODE_DIR]
    mounts, host_network = tracking_access(ctx.tracking_uri)
    if host_network and not ({'network', 'net'} & set(args)):
        run_args += ['--network', 'host']
    for m in mounts:
        run_args += ['-v', m]
    for v in spec.volumes:
        run_args += ['-v', v]
    run_args += docker_arg_flags(args)
    # names copied from the host obey the child-environment policy like every other variable
    from mlproj import childenv

    allowed = childenv.environment('run', tracking_uri=ctx.tracking_uri, pass_env=ctx.pass_env)
    for n in copied:
        if n in allowed:
            values.setdefault(n, allowed[n])
        else:
            print(f'mlproj: warning: docker_env.environment copies {n}, which is withheld from project '
                  f'processes (see "The project\'s environment" in the README); pass it with --pass-env {n}',
                  file=ctx.log, flush=True)
    return DockerEnvironment(MANAGER, MANAGER, digest, engine, image, built_id, name, tuple(run_args), values,
                             {DOCKER_IMAGE_URI: image, DOCKER_IMAGE_ID: built_id})
