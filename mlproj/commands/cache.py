"""``mlproj cache list`` / ``mlproj cache prune``: the Git clone cache."""
from __future__ import annotations

import json
import time
from typing import Any

import click


def _age(seconds: float) -> str:
    if seconds < 120:
        return f'{int(seconds)}s'
    if seconds < 7200:
        return f'{int(seconds // 60)}m'
    if seconds < 172800:
        return f'{int(seconds // 3600)}h'
    return f'{int(seconds // 86400)}d'


def _size(n: int) -> str:
    value = float(n)
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if value < 1024 or unit == 'GiB':
            return f'{value:.0f} {unit}' if unit == 'B' else f'{value:.1f} {unit}'
        value /= 1024
    return f'{n} B'


@click.group('cache')
def cache() -> None:
    """Inspect or prune the Git clone cache (MLPROJ_CACHE_DIR, else $XDG_CACHE_HOME/mlproj)."""


@cache.command('list')
@click.option('--json', 'as_json', is_flag=True, help='Print JSON.')
def list_(as_json: bool) -> None:
    """List cached repositories and run checkouts."""
    from mlproj.source.cache import CloneCache, dir_size

    store = CloneCache()
    now = time.time()
    mirrors: list[dict[str, Any]] = []
    for m in store.mirrors():
        meta = m.meta()
        mirrors.append({'url': m.url, 'path': str(m.path), 'size': dir_size(m.path),
                        'last_used': meta.get('last_used'), 'last_fetch': meta.get('last_fetch')})
    checkouts: list[dict[str, Any]] = [{'path': str(p), 'commit': meta.get('commit'), 'source': meta.get('source'),
                  'keep': bool(meta.get('keep')), 'created': meta.get('created'), 'size': dir_size(p)}
                 for p, meta in store.checkouts()]
    if as_json:
        click.echo(json.dumps({'root': str(store.root), 'repositories': mirrors, 'checkouts': checkouts}, indent=2))
        return
    click.echo(f'cache: {store.root}')
    if not mirrors:
        click.echo('no cached repositories')
    for row in mirrors:
        used = _age(now - float(row['last_used'])) + ' ago' if row['last_used'] else 'never'
        click.echo(f"{row['url']}  {_size(row['size'])}  used {used}  {row['path']}")
    for c in checkouts:
        kept = ' (kept)' if c['keep'] else ''
        click.echo(f"checkout {(c['commit'] or '?')[:12]} of {c['source']}{kept}  {_size(c['size'])}  {c['path']}")


@cache.command('prune')
@click.option('--older-than', default=None, metavar='AGE',
              help='Only remove entries unused for AGE (e.g. 12h, 30d, 2w; a bare number means days).')
@click.option('--dry-run', is_flag=True, help='Show what would be removed.')
def prune(older_than: str | None, dry_run: bool) -> None:
    """Remove cached repositories and leftover checkouts (all, or those unused for --older-than)."""
    from mlproj.source.cache import CloneCache, parse_duration

    seconds = parse_duration(older_than) if older_than else None
    store = CloneCache()
    if dry_run:
        cutoff = time.time() - seconds if seconds is not None else None
        for m in store.mirrors():
            last = float(m.meta().get('last_used') or 0)
            if cutoff is None or last <= cutoff:
                click.echo(f'would remove {m.url}  {m.path}')
        return
    removed = store.prune(seconds)
    for item in removed:
        click.echo(f'removed {item}')
    click.echo(f'{len(removed)} cache entr{"y" if len(removed) == 1 else "ies"} removed')
