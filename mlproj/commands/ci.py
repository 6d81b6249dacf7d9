"""``mlproj ci``: the commands behind the GitHub Action, usable from any CI step.

* ``mlproj ci run``      run a project; write ``$GITHUB_OUTPUT`` and ``$GITHUB_STEP_SUMMARY``.
* ``mlproj ci report``   sticky PR comment, commit status or check run (with lint annotations).
* ``mlproj ci env-key``  the environment-cache key for ``actions/cache``.
* ``mlproj ci cancel``   end a run a cancelled job left RUNNING (and stop its job through its backend).
"""
from __future__ import annotations

import os
import sys

import click

from mlproj.request import ENV_MANAGERS


@click.group('ci')
def ci() -> None:
    """Run and report MLflow projects from CI (the commands behind the GitHub Action)."""


_state_option = click.option('--state-file', default=None, metavar='PATH',
                             help='JSON file shared by the steps of one action invocation.')


@ci.command('run')
@click.argument('uri', default='', required=False)
@click.option('-e', '--entry-point', default='main', show_default=True)
@click.option('-v', '--version', 'version', default=None, help='Git revision (default: the PR head commit).')
@click.option('-P', '--param-list', 'param_list', multiple=True, metavar='NAME=VALUE', help='A parameter (repeatable).')
@click.option('--parameters', 'parameters_text', default=None, metavar='TEXT',
              help='Parameters as lines of name=value (the action input); blank lines and # comments ignored.')
@click.option('-b', '--backend', default='local', show_default=True)
@click.option('-c', '--backend-config', default=None, metavar='FILE|JSON')
@click.option('--env-manager', type=click.Choice(ENV_MANAGERS), default=None)
@click.option('--experiment-name', default=None)
@click.option('--tracking-uri', default=None)
@click.option('--run-name', default=None)
@click.option('--key', default=None, help='Identity of this project run for the sticky comment (default URI:ENTRY).')
@_state_option
@click.option('--github-output', envvar='GITHUB_OUTPUT', default=None, metavar='PATH', help='Default: $GITHUB_OUTPUT.')
@click.option('--step-summary', envvar='GITHUB_STEP_SUMMARY', default=None, metavar='PATH',
              help='Default: $GITHUB_STEP_SUMMARY.')
def run(uri: str, entry_point: str, version: str | None, param_list: tuple[str, ...], parameters_text: str | None,
        backend: str, backend_config: str | None, env_manager: str | None, experiment_name: str | None,
        tracking_uri: str | None, run_name: str | None, key: str | None, state_file: str | None,
        github_output: str | None, step_summary: str | None) -> None:
    """Run the project at URI (default: this repository at the pull request's head commit).

    A URI of the form '#sub/dir' means that subdirectory of this repository.  GitHub tokens are
    removed from the environment the project sees.  The exit status is the run's.
    """
    from mlproj.ci.runstep import CiRun, execute, parse_parameters
    from mlproj.errors import BadArgumentError
    from mlproj.params import parse_key_values

    params = parse_parameters(parameters_text)
    for name, value in parse_key_values(param_list, '-P').items():
        if name in params:
            raise BadArgumentError(f'parameter {name!r} is given both in --parameters and with -P')
        params[name] = value
    opts = CiRun(uri=uri, entry_point=entry_point, version=version or None, parameters=params, backend=backend,
                 backend_config=backend_config or None, env_manager=env_manager or None,
                 experiment_name=experiment_name or None, tracking_uri=tracking_uri or None,
                 run_name=run_name or None, key=key or None, state_file=state_file,
                 github_output=github_output or None, step_summary=step_summary or None)
    sys.exit(execute(opts))


@ci.command('report')
@_state_option
@click.option('--run-id', default=None, help='MLflow run to report (default: from --state-file).')
@click.option('--tracking-uri', default=None, help='Default: from --state-file, then MLFLOW_TRACKING_URI.')
@click.option('--lint-file', default=None, metavar='PATH',
              help='Output of `mlproj lint --format github`: findings become check-run annotations.')
@click.option('--comment/--no-comment', default=False, show_default=True, help='Sticky comment on the pull request.')
@click.option('--check', 'check', type=click.Choice(['status', 'check-run', 'none']), default='status',
              show_default=True, help='Commit status, or a check run (carries lint annotations), on the head commit.')
@click.option('--start', is_flag=True, help='Before the run: a pending status / in-progress check run.')
@click.option('--key', default=None, help='Sticky comment identity (default: from the state file, else URI:ENTRY).')
@click.option('--uri', default=None, help='Project URI as given to the run (for the default --key).')
@click.option('--entry-point', default=None, help='Entry point (for the default --key and when there is no run).')
@click.option('--repo', envvar='GITHUB_REPOSITORY', default=None, metavar='OWNER/NAME',
              help='Default: $GITHUB_REPOSITORY.')
@click.option('--sha', default=None, help='Commit to attach to (default: the PR head from the event, else GITHUB_SHA).')
@click.option('--pr', 'pr_number', type=int, default=None, help='Pull request number (default: from the event).')
@click.option('--api-url', default=None, help='GitHub API URL (default: $GITHUB_API_URL, else https://api.github.com).')
@click.option('--token-env', default='GITHUB_TOKEN', show_default=True,
              help='Name of the environment variable holding the token (never pass a token as an argument).')
@click.option('--strict', is_flag=True, help='Exit non-zero when GitHub refuses a report (default: warn).')
def report(state_file: str | None, run_id: str | None, tracking_uri: str | None, lint_file: str | None,
           comment: bool, check: str, start: bool, key: str | None, uri: str | None, entry_point: str | None,
           repo: str | None, sha: str | None, pr_number: int | None, api_url: str | None, token_env: str,
           strict: bool) -> None:
    """Report a run (and lint findings) on the pull request and its head commit."""
    from mlproj.ci.reporting import ReportOptions, report_run

    opts = ReportOptions(state_file=state_file, run_id=run_id, tracking_uri=tracking_uri, lint_file=lint_file,
                         comment=comment, check=check, start=start, key=key, uri=uri, entry_point=entry_point,
                         repo=repo, sha=sha, pr_number=pr_number, api_url=api_url, token=os.environ.get(token_env, ''),
                         strict=strict)
    sys.exit(report_run(opts))


@ci.command('env-key')
@click.argument('uri', default='', required=False)
@click.option('-v', '--version', 'version', default=None)
@click.option('--env-manager', type=click.Choice(ENV_MANAGERS), default=None)
@click.option('-e', '--entry-point', default=None, help="The entry point to be run (its own environment, if any).")
@click.option('--github-output', envvar='GITHUB_OUTPUT', default=None, metavar='PATH')
def env_key(uri: str, version: str | None, env_manager: str | None, entry_point: str | None,
            github_output: str | None) -> None:
    """Print the environment-cache key of the project (outputs: cache, key, restore-prefix, path)."""
    from mlproj.ci import gha
    from mlproj.ci.cache import compute

    outputs = compute(uri, version or None, env_manager or None, entry_point or None)
    gha.write_outputs(github_output, outputs)
    for k, v in outputs.items():
        click.echo(f'{k}={v}')


@ci.command('cancel')
@_state_option
def cancel(state_file: str | None) -> None:
    """End the run recorded in the state file if it is still RUNNING (and stop its backend's job)."""
    from mlproj.ci.cancel import cancel_from_state

    click.echo('mlproj: ' + cancel_from_state(state_file), err=True)
