"""``mlproj reproduce RUN_ID``: run a recorded MLflow run again, exactly, as a new run.

The source URI, commit, subdirectory, entry point, parameters and env manager are read from the
run's tags and params (mlproj's own tags when present, MLflow's otherwise), the commit is pinned
with ``-v <sha>`` and the new run is tagged ``mlproj.reproduced_from=<RUN_ID>``.

Exact environments: when the run used a uv or virtualenv environment that recorded its exact
lock (tag ``mlproj.env.lock_sha256``, artifact ``mlproj/requirements.lock.txt``, see
``mlproj.envs.lock``), the lock is read back (its sha256 must match the tag) and the environment
is built from it instead of from the project's spec: the same names and versions (and hashes),
whatever the index serves now.  ``--no-lock`` rebuilds from the spec instead.  A project that
ships ``uv.lock`` is built from its ``uv.lock`` at the pinned commit, as before.  A run whose
lock artifact is gone is rebuilt from the spec with a warning.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
from typing import Any

import click

from mlproj import verbose
from mlproj.request import ENV_MANAGERS
from mlproj.tags import (
    ENV_LOCK_SHA256,
    ENV_MANAGER,
    GIT_COMMIT,
    GIT_DIFF_SHA256,
    GIT_DIRTY,
    GIT_REPO_URL,
    GIT_REPO_URL_LEGACY,
    MLPROJ_PREFIX,
    PROJECT_ENTRY_POINT,
    PROJECT_ENV,
    REPRODUCED_FROM,
    SOURCE_NAME,
    SOURCE_SUBDIRECTORY,
    SOURCE_URI,
)


def _candidate_uris(tags: dict[str, str]) -> list[str]:
    """Where the recorded source can be fetched from, best first (no fragments, no credentials)."""
    from mlproj.errors import MlprojError
    from mlproj.source.redact import strip_credentials
    from mlproj.source.uri import split_subdirectory

    out: list[str] = []
    origin = tags.get(SOURCE_URI)
    if origin:
        out.append(origin)
    name = tags.get(SOURCE_NAME) or ''
    if name:
        try:
            base, _sub = split_subdirectory(name)
        except MlprojError:
            base = ''
        if base:
            out.append(strip_credentials(base))
    for key in (GIT_REPO_URL, GIT_REPO_URL_LEGACY):
        if tags.get(key):
            out.append(strip_credentials(tags[key]))
    seen: list[str] = []
    for uri in out:
        if uri not in seen:
            seen.append(uri)
    return seen


def _usable(uri: str) -> bool:
    """A remote URI is worth trying; a local one only if it still exists."""
    from mlproj.errors import SourceError
    from mlproj.source.uri import parse

    try:
        parsed = parse(uri, os.getcwd())
    except SourceError:
        return False
    return parsed.is_remote or os.path.isdir(parsed.url)


def _subdirectory(tags: dict[str, str]) -> str:
    from mlproj.source.uri import split_subdirectory

    if SOURCE_SUBDIRECTORY in tags:
        return tags[SOURCE_SUBDIRECTORY]
    name = tags.get(SOURCE_NAME, '')
    if '#' in name:
        try:
            return split_subdirectory(name)[1]
        except Exception:
            return ''
    return ''


def _env_manager(tags: dict[str, str]) -> str | None:
    manager = tags.get(ENV_MANAGER)
    if manager in ENV_MANAGERS:
        return manager
    env = tags.get(PROJECT_ENV)
    if env in ENV_MANAGERS:
        return env
    if env is None and not any(k.startswith(MLPROJ_PREFIX) for k in tags):
        return 'local'  # a run made by `mlflow run --env-manager local` carries no env tag
    return None


def recorded_lock(tracker: Any, record: Any) -> tuple[bytes | None, str | None]:
    """(the run's exact environment lock, a warning) from its artifact, checked against its tag."""
    import hashlib

    from mlproj.artifacts import read_file
    from mlproj.envs.lock import ARTIFACT_PATH
    from mlproj.errors import EnvError

    digest = record.tags.get(ENV_LOCK_SHA256)
    if not digest:
        return None, None
    data = read_file(tracker, record.run_id, ARTIFACT_PATH, record.artifact_uri or None)
    if data is None:
        return None, (f'run {record.run_id} recorded an environment lock ({digest[:12]}) but its artifact '
                      f'{ARTIFACT_PATH} is gone; rebuilding the environment from the project\'s spec')
    if hashlib.sha256(data).hexdigest() != digest:
        raise EnvError(f'the artifact {ARTIFACT_PATH} of run {record.run_id} does not match its tag {ENV_LOCK_SHA256} '
                       f'({digest[:12]}); use --no-lock to rebuild from the project\'s spec')
    return data, None


def build_request(run_id: str, record: Any, *, tracking_uri: str | None, env_manager: str | None = None,
                  experiment_name: str | None = None, experiment_id: str | None = None,
                  keep_checkout: bool = False, dry_run: bool = False, tracker: Any = None,
                  use_lock: bool = True) -> tuple[Any, list[str]]:
    """The ``RunRequest`` that repeats ``record``, and warnings about what cannot be repeated.

    With ``tracker`` and ``use_lock``, a uv/virtualenv run's recorded lock goes into ``env_lock``."""
    from mlproj.errors import SourceError
    from mlproj.request import RunRequest

    tags = dict(record.tags)
    warnings: list[str] = []
    commit = tags.get(GIT_COMMIT)
    if not commit:
        raise SourceError(f'run {run_id} has no recorded commit (mlflow.source.git.commit); '
                          'only runs of Git sources can be reproduced')
    candidates = _candidate_uris(tags)
    usable = [u for u in candidates if _usable(u)]
    if not usable:
        tried = ', '.join(candidates) if candidates else 'no source URI recorded'
        raise SourceError(f'the source of run {run_id} is not available ({tried})')
    uri = usable[0]
    subdir = _subdirectory(tags)
    if subdir:
        uri = f'{uri}#{subdir}'
    if tags.get(GIT_DIRTY) == 'true':
        digest = tags.get(GIT_DIFF_SHA256, '')
        warnings.append(f'run {run_id} was made from a working tree with uncommitted changes'
                        f'{" (diff sha256 " + digest[:12] + ")" if digest else ""}; reproducing commit {commit[:12]}')
    if not experiment_name and not experiment_id:
        experiment_id = record.experiment_id
    manager = env_manager or _env_manager(tags)
    env_lock = None
    if use_lock and tracker is not None and manager in ('uv', 'virtualenv'):
        env_lock, problem = recorded_lock(tracker, record)
        if problem:
            warnings.append(problem)
    request = RunRequest(
        uri=uri, entry_point=tags.get(PROJECT_ENTRY_POINT) or 'main', version=commit,
        parameters=dict(record.params), experiment_name=experiment_name, experiment_id=experiment_id,
        env_manager=manager, tracking_uri=tracking_uri, keep_checkout=keep_checkout,
        dry_run=dry_run, extra_tags={REPRODUCED_FROM: run_id},
        run_name=None, env_lock=env_lock,
    )
    return request, warnings


@click.command('reproduce')
@click.argument('run_id')
@click.option('--tracking-uri', default=None, help='MLflow tracking URI (default: MLFLOW_TRACKING_URI or ./mlflow.db).')
@click.option('--env-manager', type=click.Choice(ENV_MANAGERS), default=None,
              help='Override the recorded env manager.')
@click.option('--experiment-name', default=None, help='Record the new run here (default: the original experiment).')
@click.option('--experiment-id', default=None, help='Record the new run here (default: the original experiment).')
@click.option('--keep-checkout', is_flag=True, help='Keep the checkout after the run.')
@click.option('--no-lock', is_flag=True,
              help="Build the environment from the project's spec, not from the run's recorded exact lock.")
@click.option('--dry-run', is_flag=True, help='Show what would run; create nothing.')
@click.option('--json', 'as_json', is_flag=True, help='With --dry-run: print JSON.')
@verbose.option()
def reproduce(run_id: str, tracking_uri: str | None, env_manager: str | None, experiment_name: str | None,
              experiment_id: str | None, keep_checkout: bool, no_lock: bool, dry_run: bool, as_json: bool) -> None:
    """Run the recorded run RUN_ID again (same source commit, entry point, parameters, env manager,
    and the exact package set the run's uv/virtualenv environment recorded)."""
    from mlproj import tracking
    from mlproj.errors import BadArgumentError

    if experiment_name and experiment_id:
        raise BadArgumentError('specify only one of --experiment-name and --experiment-id')
    uri = tracking.resolve_tracking_uri(tracking_uri, os.getcwd())
    tracker = tracking.get_tracker(uri)
    record = tracker.get_run(run_id)
    request, warnings = build_request(run_id, record, tracking_uri=tracking_uri, env_manager=env_manager,
                                      experiment_name=experiment_name, experiment_id=experiment_id,
                                      keep_checkout=keep_checkout, dry_run=dry_run, tracker=tracker,
                                      use_lock=not no_lock)
    for w in warnings:
        print(f'mlproj: warning: {w}', file=sys.stderr)
    if dry_run:
        _show(request, as_json)
        return
    from mlproj.commands.run import execute

    sys.exit(execute(request))


def _show(request: Any, as_json: bool) -> None:
    from mlproj.runner import plan

    p = plan(request)
    try:
        info = p.as_dict()
        info['version'] = request.version
        info['reproduced_from'] = dict(request.extra_tags).get(REPRODUCED_FROM)
        info['env_lock'] = None
        if request.env_lock is not None:
            from mlproj.envs.lock import parse

            lk = parse(request.env_lock)
            info['env_lock'] = {'sha256': lk.sha256, 'python': lk.python, 'hashed': lk.hashed,
                                'packages': lk.packages()}
        if as_json:
            click.echo(json.dumps(info, indent=2))
            return
        click.echo(f"reproduce:   {info['reproduced_from']}")
        click.echo(f"source:      {info['uri']}")
        click.echo(f"commit:      {info['commit']}")
        click.echo(f"entry point: {info['entry_point']}")
        click.echo(f"env manager: {info['env_manager']}")
        lk = info['env_lock']
        if lk:
            click.echo(f"env lock:    {lk['sha256'][:12]} (Python {lk['python']}, {len(lk['packages'])} packages"
                       f"{', hashed' if lk['hashed'] else ''})")
        click.echo(f"tracking:    {info['tracking_uri']}")
        click.echo('parameters:')
        for k, v in info['parameters'].items():
            click.echo(f'  {k} = {shlex.quote(v)}')
        click.echo('command:')
        click.echo(f"  {info['command']}")
        click.echo('equivalent:')
        argv = ['mlproj', 'run', request.uri, '-v', request.version, '-e', request.entry_point]
        for k, v in dict(request.parameters).items():
            argv += ['-P', f'{k}={v}']
        if request.env_manager:
            argv += ['--env-manager', request.env_manager]
        click.echo(f'  {shlex.join(argv)}')
    finally:
        p.source.cleanup()
