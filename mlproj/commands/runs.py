"""``mlproj runs gc``: end runs left RUNNING by launchers that died (see ``mlproj.stale``);
``mlproj runs diff``: what changed between two runs (see ``mlproj.rundiff``)."""
from __future__ import annotations

import json

import click


@click.group('runs')
def runs() -> None:
    """Housekeeping and comparison of the MLflow runs mlproj launched."""


@runs.command('gc')
@click.option('--tracking-uri', default=None, help='MLflow tracking URI (default: MLFLOW_TRACKING_URI or ./mlflow.db).')
@click.option('--experiment-id', 'experiment_ids', multiple=True, metavar='ID',
              help='Only this experiment (repeatable; default: every experiment).')
@click.option('--dry-run', is_flag=True, help='List the stale runs; change nothing.')
@click.option('--json', 'as_json', is_flag=True, help='Print JSON.')
def gc(tracking_uri: str | None, experiment_ids: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """End FAILED the RUNNING runs whose launcher ran on this host and is provably dead.

    A run is ended only when its `mlproj.launcher.*` tags name this host (and pid namespace) and
    the machine rebooted since, or that process no longer exists; the reason is recorded in the
    tag `mlproj.stale`.  Runs from other hosts and runs not launched by mlproj are left alone.
    """
    from mlproj import stale, tracking

    uri = tracking.resolve_tracking_uri(tracking_uri)
    tracker = tracking.get_tracker(uri)
    ids = list(experiment_ids) or tracker.list_experiment_ids()
    ended = stale.sweep(tracker, ids, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps([{'run_id': e.run_id, 'experiment_id': e.experiment_id, 'reason': e.reason,
                                'ended': not dry_run} for e in ended], indent=2))
        return
    verb = 'would end' if dry_run else 'ended'
    for e in ended:
        click.echo(f'{verb} run {e.run_id} (experiment {e.experiment_id}) FAILED: {e.reason}')
    where = tracking.redact_uri(uri)
    click.echo(f'{len(ended)} stale run(s) {verb.split()[-1]} in {len(ids)} experiment(s) of {where}')


@runs.command('diff')
@click.argument('run_a')
@click.argument('run_b')
@click.option('--tracking-uri', default=None, help='MLflow tracking URI (default: MLFLOW_TRACKING_URI or ./mlflow.db).')
@click.option('--json', 'as_json', is_flag=True, help='Print JSON (every changed file and package).')
def diff(run_a: str, run_b: str, tracking_uri: str | None, as_json: bool) -> None:
    """What changed from RUN_A to RUN_B: commit range, changed files under the project's
    subdirectory, parameters, packages of the exact environment locks, entry point, env manager.

    Commits are counted in a local repository the runs name or in the clone cache; nothing is fetched.
    """
    from mlproj import rundiff, tracking

    uri = tracking.resolve_tracking_uri(tracking_uri)
    result = rundiff.diff_runs(tracking.get_tracker(uri), run_a, run_b)
    click.echo(json.dumps(result, indent=2) if as_json else rundiff.render(result))
