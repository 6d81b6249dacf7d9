"""``mlproj run``: flag-compatible with ``mlflow run``.

The commands of MLflow's own documents work verbatim: ``--param`` (the tutorial) is an alias of
``-P/--param-list``, ``-m/--mode`` and ``--cluster-spec`` (the Databricks guide, MLflow's older
names) of ``-b/--backend`` and ``-c/--backend-config``, and ``--git-username``/``--git-password``
(the same guide) give an HTTPS Git credential (``source.credentials``: tried first, with the
``MLFLOW_GIT_USERNAME``/``MLFLOW_GIT_PASSWORD`` variables as fallback).

This module defines the options and their help; what the command does is
``mlproj.commands.run_body``.  The console script parses everyday argument lists without click
(``mlproj.clicore``, whose option tables a test holds equal to the options here).
"""
from __future__ import annotations

import json
import shlex

import click

from mlproj import completion, verbose
from mlproj.commands.run_body import (  # noqa: F401  (execute, backend_config_value: used by reproduce, sweep)
    backend_config_value,
    execute,
    invoke,
    quiet_option,
)
from mlproj.request import ENV_MANAGERS


@click.command('run')
@click.argument('uri', default='.', required=False)
@click.option('-e', '--entry-point', default='main', show_default=True, shell_complete=completion.entry_points,
              help='Entry point name, or a .py/.sh file.')
@click.option('-v', '--version', 'version', default=None, help='Git revision: branch, tag, (short) SHA, HEAD~2, ...')
@click.option('-P', '--param-list', '--param', 'param_list', multiple=True, metavar='NAME=VALUE',
              shell_complete=completion.parameters,
              help='A parameter (repeatable). --param is an alias (the MLflow tutorial\'s spelling).')
@click.option('-A', '--docker-args', 'docker_args', multiple=True, metavar='NAME[=VALUE]',
              help='A `docker run` option for docker projects (repeatable); a bare name is a flag.')
@click.option('--experiment-name', default=None,
              help='Experiment name (created if missing). Env: MLFLOW_EXPERIMENT_NAME.')
@click.option('--experiment-id', default=None, help='Experiment id. Env: MLFLOW_EXPERIMENT_ID.')
@click.option('-b', '--backend', '-m', '--mode', 'backend', default=None,
              help='Execution backend (default: local, or run.backend of a config file). -m/--mode is an '
                   'alias (MLflow\'s older name).')
@click.option('-c', '--backend-config', '--cluster-spec', 'backend_config', default=None, metavar='FILE|JSON',
              help='Backend config: a .json file or inline JSON. --cluster-spec is an alias (MLflow\'s older '
                   'name; a Databricks new-cluster spec is accepted as is).')
@click.option('--env-manager', type=click.Choice(ENV_MANAGERS), default=None,
              help='How to prepare the Python environment (default: run.env-manager of a config file, else uv '
                   'for python_env/conda_env projects, local for projects without an environment).')
@click.option('--storage-dir', envvar='MLFLOW_TMP_DIR', default=None,
              help='Where remote `path` parameters are downloaded.')
@click.option('--run-id', default=None, help='Resume this existing (RUNNING) MLflow run instead of creating one.')
@click.option('--run-name', default=None, help='Name of the MLflow run.')
@click.option('--build-image', is_flag=True, help='Docker projects: build an image with the project copied in.')
@click.option('--tracking-uri', default=None, help='MLflow tracking URI (default: MLFLOW_TRACKING_URI or ./mlflow.db).')
@click.option('--dry-run', is_flag=True, help='Print the resolved command, environment and tags; create nothing.')
@click.option('--json', 'as_json', is_flag=True, help='With --dry-run: print JSON.')
@click.option('--keep-checkout', is_flag=True, help='Keep the checkout of a Git source after the run.')
@click.option('--require-clean', is_flag=True, help='Refuse to run a local Git project with uncommitted changes.')
@click.option('--no-wait', is_flag=True, help='Return once the run is submitted (remote backends).')
@click.option('--pass-env', 'pass_env', multiple=True, metavar='NAME',
              help="Pass this variable to the project's processes although mlproj's policy withholds it "
                   '(repeatable; also MLPROJ_PASS_ENV=A,B). See "The project\'s environment" in the README.')
@click.option('-q', '--quiet', 'quiet', is_flag=True, expose_value=False,
              callback=lambda ctx, param, value: quiet_option(value),
              help="Print only the project's own output and errors (also `mlproj -q`, MLPROJ_QUIET=1).")
@verbose.option("Show the installer's full output while an environment is built and what Git fetches "
                '(also `mlproj --verbose`, MLPROJ_VERBOSE=1; no -v: that is --version, as in `mlflow run`).')
@click.option('--strict', is_flag=True,
              help='Refuse what `mlproj lint` reports as errors (by default such files run as MLflow runs them).')
@click.option('--reuse/--force', 'reuse', default=None,
              help='--reuse: when a FINISHED run of this experiment has the same inputs (commit, subdirectory, '
                   'entry point, parameters, environment, backend), report it and exit 0 instead of running. '
                   '--force: run anyway (the default; MLPROJ_REUSE=1 or run.reuse in a config file makes --reuse the '
                   'default).')
@click.option('--git-username', default=None, help='User name for an HTTPS Git source. Env: MLFLOW_GIT_USERNAME.')
@click.option('--git-password', default=None,
              help='Password or token for an HTTPS Git source; prefer the MLFLOW_GIT_PASSWORD variable '
                   '(other users can read command lines).')
def run(uri: str, entry_point: str, version: str | None, param_list: tuple[str, ...], docker_args: tuple[str, ...],
        experiment_name: str | None, experiment_id: str | None, backend: str, backend_config: str | None,
        env_manager: str | None, storage_dir: str | None, run_id: str | None, run_name: str | None,
        build_image: bool, tracking_uri: str | None, dry_run: bool, as_json: bool, keep_checkout: bool,
        require_clean: bool, no_wait: bool, pass_env: tuple[str, ...], strict: bool, reuse: bool | None,
        git_username: str | None, git_password: str | None) -> None:
    """Run the project at URI (a directory, or a Git URI with optional #subdirectory)."""
    invoke(**locals())


def dry_run(request, as_json: bool) -> None:
    from mlproj.commands.show import env_text
    from mlproj.runner import plan
    from mlproj.safeout import printable

    p = plan(request)
    try:
        info = p.as_dict()
        if as_json:
            click.echo(json.dumps(info, indent=2))
            return
        click.echo(f"project:     {info['project_dir']}")
        if info['commit']:
            click.echo(f"commit:      {info['commit']}")
        click.echo(f"entry point: {info['entry_point']}")
        click.echo(f"env manager: {info['env_manager']}")
        own = " (the entry point's own)" if info['environment']['entry_point_env'] else ''
        click.echo(printable(f"environment: {env_text(info['environment'])}{own}"))
        click.echo(f"backend:     {info['backend']}")
        exp = info['experiment']
        click.echo(printable(f"experiment:  {exp['name']!r} (by name; created if missing)" if exp['name'] else
                             f"experiment:  id {exp['id']}" + (' (Default)' if exp['id'] == '0' else '')))
        click.echo(f"tracking:    {info['tracking_uri']}")
        click.echo(f"cache key:   {info['cache_key'] or '(none: ' + (p.cache_miss_reason or '') + ')'}")
        click.echo('parameters:')
        for k, v in info['parameters'].items():
            click.echo(f'  {k} = {shlex.quote(v)}')
        click.echo('tags:')
        for k, v in info['tags'].items():
            click.echo(f'  {k} = {v}')
        click.echo('command:')
        click.echo(f"  {info['command']}")
    finally:
        p.source.cleanup()
