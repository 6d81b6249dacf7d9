"""``mlproj env``: list, prune and build the cached environments."""
from __future__ import annotations

import json
import re
import time

import click

from mlproj import verbose
from mlproj.request import ENV_MANAGERS

_DURATION = re.compile(r'^(\d+(?:\.\d+)?)\s*([smhdw]?)$')
_UNITS = {'': 86400, 's': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 7 * 86400}


def parse_duration(text: str) -> float:
    from mlproj.errors import BadArgumentError

    m = _DURATION.match(text.strip().lower())
    if not m:
        raise BadArgumentError(f'invalid duration {text!r}: use e.g. 30d, 12h, 90m, 2w')
    return float(m.group(1)) * _UNITS[m.group(2)]


def _age(ts: float) -> str:
    if not ts:
        return '-'
    seconds = max(0, time.time() - ts)
    for unit, size in (('d', 86400), ('h', 3600), ('m', 60)):
        if seconds >= size:
            return f'{int(seconds // size)}{unit}'
    return f'{int(seconds)}s'


@click.group('env')
def env() -> None:
    """Cached environments (uv, virtualenv, conda, docker images built by mlproj)."""


@env.command('list')
@click.option('--json', 'as_json', is_flag=True, help='Print JSON.')
def list_cmd(as_json: bool) -> None:
    """List cached environments: name, manager, Python, state, last use, path."""
    from mlproj.envs.store import EnvStore

    store = EnvStore()
    rows = []
    for e in store.entries():
        rows.append({
            'name': e.name,
            'manager': e.meta.get('manager', '?'),
            'python': e.meta.get('python', ''),
            'state': 'ready' if e.ready else 'incomplete',
            'last_used': e.last_used,
            'path': str(e.path),
            'hash': e.meta.get('hash', ''),
            'source': e.meta.get('source', '') or e.meta.get('project', ''),
        })
    if as_json:
        click.echo(json.dumps({'root': str(store.root), 'environments': rows}, indent=2))
        return
    click.echo(f'environment root: {store.root}')
    if not rows:
        click.echo('no environments')
        return
    width = max(len(r['name']) for r in rows)
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['manager']:<10} {r['python'] or '-':<8} {r['state']:<10} "
                   f"{_age(r['last_used']):>5}  {r['path']}")


@env.command('prune')
@click.option('--all', 'everything', is_flag=True, help='Remove every cached environment.')
@click.option('--older-than', default=None, metavar='DURATION',
              help='Remove environments not used for this long (30d, 12h, 2w).')
@click.option('--dry-run', is_flag=True, help='Only print what would be removed.')
def prune(everything: bool, older_than: str | None, dry_run: bool) -> None:
    """Remove incomplete builds, and environments unused for a while (or all of them).

    Environments being built are skipped.  A run still using a removed environment may fail:
    prune when no runs are active.
    """
    from mlproj.envs.store import EnvStore

    limit = parse_duration(older_than) if older_than else None
    store = EnvStore()
    removed = kept = 0
    now = time.time()
    for e in store.entries():
        stale = not e.ready or everything or (limit is not None and now - e.last_used > limit)
        if not stale:
            kept += 1
            continue
        if dry_run:
            click.echo(f'would remove {e.name} ({e.path})')
            removed += 1
            continue
        if e.ready and e.meta.get('kind') == 'record':
            _remove_external(e.meta)
        if store.remove(e):
            click.echo(f'removed {e.name}')
            removed += 1
        else:
            click.echo(f'skipped {e.name}: being built')
            kept += 1
    click.echo(f"{'would remove' if dry_run else 'removed'} {removed}, kept {kept}")


def _remove_external(meta: dict) -> None:
    """Best effort: the conda env or docker image a record stands for."""
    import subprocess

    argv = None
    if meta.get('manager') == 'conda' and meta.get('tool') and meta.get('conda_env_name'):
        argv = [meta['tool'], 'remove', '--yes', '--name', meta['conda_env_name'], '--all']
    elif meta.get('manager') == 'docker' and meta.get('engine') and meta.get('image'):
        argv = [meta['engine'], 'rmi', meta['image']]
    if argv:
        try:
            subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError:
            pass


@env.command('build')
@click.argument('path', default='.', required=False)
@click.option('--env-manager', type=click.Choice([m for m in ENV_MANAGERS if m != 'local']), default=None,
              help='Manager (default: as `mlproj run` would choose).')
@click.option('--build-image', is_flag=True, help='docker_env projects: build the project image.')
@click.option('-e', '--entry-point', default=None,
              help="Prepare the environment this entry point runs in (its own, when it declares one).")
@verbose.option()
def build(path: str, env_manager: str | None, build_image: bool, entry_point: str | None) -> None:
    """Prepare the environment of the project in PATH without running anything."""
    from mlproj.envs import EnvContext, prepare, select_manager
    from mlproj.spec import load_project

    project = load_project(path)
    if entry_point is not None:
        project = project.for_entry_point(project.get_entry_point(entry_point))
    manager = select_manager(project, env_manager)
    environment = prepare(project, manager, EnvContext(build_image=build_image))
    click.echo(f'manager: {environment.manager}')
    if environment.hash:
        click.echo(f'hash:    {environment.hash}')
    where = getattr(environment, 'path', None) or getattr(environment, 'prefix', None) \
        or getattr(environment, 'image', None)
    if where:
        click.echo(f'path:    {where}')
