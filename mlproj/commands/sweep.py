"""``mlproj sweep``: ``mlproj run`` over a grid of parameter values (see ``mlproj.sweep``).

It takes every option of ``mlproj run`` that makes sense for many runs (the same spelling, the
same meaning), except that a ``-P`` value with a comma is a list of values to sweep: ``-P
alpha=0.1,0.5`` (``\\,`` for a literal comma).  ``mlproj run`` itself never splits values, as
``mlflow run`` does not.
"""
from __future__ import annotations

import json
import sys

import click

from mlproj import completion
from mlproj.commands.run import backend_config_value
from mlproj.commands.run import run as _run

_NOT_FOR_SWEEPS = {'param_list', 'run_id', 'no_wait', 'dry_run', 'as_json', 'reuse'}


def _sweep(param_list: tuple[str, ...], sweep_file: str | None, max_parallel: int | None, fail_fast: bool,
           metric: str | None, goal: str, as_json: bool, dry_run: bool, reuse: bool | None, **kw) -> None:
    from mlproj import sweep, sweep_points
    from mlproj.errors import BadArgumentError
    from mlproj.params import parse_key_values
    from mlproj.request import RunRequest
    from mlproj.settings import run_options

    if kw['experiment_name'] and kw['experiment_id']:
        raise BadArgumentError('specify only one of --experiment-name and --experiment-id')
    opts = run_options(kw['uri'], env_manager=kw['env_manager'], backend=kw['backend'],
                       backend_config=kw['backend_config'], experiment_name=kw['experiment_name'],
                       experiment_id=kw['experiment_id'], tracking_uri=kw['tracking_uri'], reuse=reuse,
                       max_parallel=max_parallel)
    if kw['git_password'] is not None:
        print('mlproj: warning: --git-password is visible to other users of this machine (ps, /proc); '
              'set MLFLOW_GIT_PASSWORD instead', file=sys.stderr)
    raw = parse_key_values(param_list, '-P')
    from_file = sweep_points.read_sweep_file(sweep_file) if sweep_file else None
    points, constants, swept = sweep_points.points_from(raw, from_file)
    if dry_run:
        listing = {'constants': constants, 'swept': swept, 'points': points}
        if as_json:
            click.echo(json.dumps(listing, indent=2))
        else:
            click.echo(f'{len(points)} point(s); swept: {", ".join(swept) or "(nothing)"}')
            for i, p in enumerate(points):
                click.echo(f'  {i}: ' + ' '.join(f'{k}={p[k]}' for k in swept if k in p))
        return
    request = RunRequest(
        uri=kw['uri'], entry_point=kw['entry_point'], version=kw['version'], parameters={},
        docker_args=parse_key_values(kw['docker_args'], '-A', allow_flags=True),
        experiment_name=opts.experiment_name, experiment_id=kw['experiment_id'], backend=opts.backend,
        backend_config=backend_config_value(opts.backend_config), env_manager=opts.env_manager,
        storage_dir=kw['storage_dir'], run_name=kw['run_name'], build_image=kw['build_image'],
        keep_checkout=kw['keep_checkout'], require_clean=kw['require_clean'], tracking_uri=opts.tracking_uri,
        pass_env=tuple(kw['pass_env']), strict=kw['strict'], git_username=kw['git_username'],
        git_password=kw['git_password'], reuse=opts.reuse,
    )
    result = sweep.run_sweep(request, points, constants, swept, max_parallel=opts.max_parallel, fail_fast=fail_fast,
                             metric=metric, goal=goal)
    if as_json:
        click.echo(json.dumps(sweep.as_json(result, goal), indent=2))
    else:
        click.echo(sweep.table(result, goal))
    from mlproj.color import status

    print(status(f"=== Sweep (parent run ID '{result.parent_run_id}') {result.status.lower()} ==="), file=sys.stderr)
    sys.exit(result.exit_code)


_params = [p for p in _run.params if p.name not in _NOT_FOR_SWEEPS]
_params[1:1] = [
    click.Option(['-P', '--param-list', '--param', 'param_list'], multiple=True, metavar='NAME=V1,V2,...',
                 shell_complete=completion.parameters,
                 help='A parameter (repeatable); values separated by commas are swept (\\, is a literal comma).'),
    click.Option(['--sweep-file'], default=None, metavar='FILE',
                 help='YAML with "grid" (name: [values], crossed with -P lists) and/or "points" (a list of '
                      '{name: value}).'),
    click.Option(['--max-parallel'], type=click.IntRange(min=1), default=None,
                 help='How many points run at once (default: 1, or MLPROJ_MAX_PARALLEL / sweep.max-parallel).'),
    click.Option(['--fail-fast'], is_flag=True, help='Cancel the sweep when a point fails.'),
    click.Option(['--metric'], default=None, metavar='NAME', help='Show this metric of each run, best first.'),
    click.Option(['--goal'], type=click.Choice(['min', 'max']), default='min', show_default=True,
                 help='Whether lower or higher --metric is better.'),
    click.Option(['--reuse/--force', 'reuse'], default=None,
                 help='--reuse: a point whose inputs match a FINISHED run is reported instead of run '
                      '(MLPROJ_REUSE=1 or run.reuse in a config file makes it the default).'),
    click.Option(['--dry-run'], is_flag=True, help='List the points; create nothing.'),
    click.Option(['--json', 'as_json'], is_flag=True, help='Print the result (or with --dry-run the points) as JSON.'),
]

sweep = click.Command(
    'sweep', callback=_sweep, params=_params,
    help='Run the project at URI once per point of a parameter grid, as child runs of one parent run.')
