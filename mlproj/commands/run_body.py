"""``mlproj run``'s body, without click: what the command does once its arguments are parsed,
by click (``mlproj.commands.run``, which defines the options and their help) or by
``mlproj.clicore`` (the everyday argument lists, without importing click)."""
from __future__ import annotations

import signal
import sys


def invoke(uri: str, entry_point: str, version: str | None, param_list: tuple[str, ...],
           docker_args: tuple[str, ...], experiment_name: str | None, experiment_id: str | None,
           backend: str | None, backend_config: str | None, env_manager: str | None, storage_dir: str | None,
           run_id: str | None, run_name: str | None, build_image: bool, tracking_uri: str | None, dry_run: bool,
           as_json: bool, keep_checkout: bool, require_clean: bool, no_wait: bool, pass_env: tuple[str, ...],
           strict: bool, reuse: bool | None, git_username: str | None, git_password: str | None) -> None:
    """The ``mlproj run`` command once its arguments are parsed (by click or ``mlproj.clicore``):
    ends with ``sys.exit`` of the run's exit code."""
    from mlproj.errors import BadArgumentError
    from mlproj.params import parse_key_values
    from mlproj.request import RunRequest
    from mlproj.settings import run_options

    if experiment_name and experiment_id:
        raise BadArgumentError('specify only one of --experiment-name and --experiment-id')
    opts = run_options(uri, env_manager=env_manager, backend=backend, backend_config=backend_config,
                       experiment_name=experiment_name, experiment_id=experiment_id, tracking_uri=tracking_uri,
                       reuse=reuse)
    backend = opts.backend
    if no_wait and backend == 'local' and not dry_run:
        # nothing would be left to record the final status of a local run once mlproj exits
        raise BadArgumentError('--no-wait needs a remote backend: a local run lives and ends with this '
                               'process (run it in the background, or use mlproj.run(..., synchronous=False))')
    if git_password is not None:
        print('mlproj: warning: --git-password is visible to other users of this machine (ps, /proc); '
              'set MLFLOW_GIT_PASSWORD instead', file=sys.stderr)
    request = RunRequest(
        uri=uri, entry_point=entry_point, version=version,
        parameters=parse_key_values(param_list, '-P'),
        docker_args=parse_key_values(docker_args, '-A', allow_flags=True),
        experiment_name=opts.experiment_name, experiment_id=experiment_id, backend=backend,
        backend_config=backend_config_value(opts.backend_config), env_manager=opts.env_manager,
        storage_dir=storage_dir,
        run_id=run_id, run_name=run_name, build_image=build_image, synchronous=not no_wait, dry_run=dry_run,
        keep_checkout=keep_checkout, require_clean=require_clean, tracking_uri=opts.tracking_uri,
        pass_env=tuple(pass_env), strict=strict, git_username=git_username, git_password=git_password,
        reuse=opts.reuse,
    )
    if dry_run:
        from mlproj.commands.run import dry_run as show_dry_run

        show_dry_run(request, as_json)
        return
    code = execute(request)
    sys.exit(code)


def backend_config_value(config):
    """-c text (a file or inline JSON), or a table of a config file, as the request's dict."""
    from mlproj.runner import load_backend_config

    return dict(config) if isinstance(config, dict) else load_backend_config(config)


def quiet_option(value: bool) -> None:
    """``run -q``: quiet mode from here on."""
    if value:
        from mlproj import quiet

        quiet.enable()


def execute(request) -> int:
    """Submit, wait with signal forwarding (``mlproj.backends.signals``), return the exit code."""
    from mlproj.backends.signals import Interrupted, Signals
    from mlproj.color import status as paint
    from mlproj.runner import submit

    def announce(submitted, signum) -> None:  # noqa: ARG001
        print(paint(f"\n=== Run (ID '{submitted.run_id}') interrupted, cancelling run ==="), file=sys.stderr,
              flush=True)

    # Preparing a run can take long (environment build, upload): a signal aborts it; the runner
    # marks an already created run KILLED on the way out.
    with Signals((signal.SIGINT, signal.SIGTERM)) as signals:
        try:
            submitted = submit(request)
        except Interrupted as e:
            print(f'mlproj: interrupted by signal {e.signum} while starting the run', file=sys.stderr)
            return 128 + e.signum
        from mlproj import console

        console.resume()  # the command runs: from here on mlproj only waits (mlproj.console)
        if getattr(submitted, 'reused', False):
            return 0
        if not request.synchronous and not signals.pending:  # a held signal: cancel and wait below
            print(submitted.run_id, flush=True)
            return 0
        ok = signals.wait(submitted, announce)
    status = submitted.get_status()
    problem = getattr(submitted, 'tracking_problem', None)
    if problem:  # the run is over but the store does not know: not a success, whatever the command did
        from mlproj.errors import EXIT_TRACKING

        print(f'mlproj: error: {problem}', file=sys.stderr)
        return EXIT_TRACKING
    if ok:
        print(paint(f"=== Run (ID '{submitted.run_id}') succeeded ==="), file=sys.stderr)
        return 0
    print(paint(f"=== Run (ID '{submitted.run_id}') {status.lower()} ==="), file=sys.stderr)
    return submitted.exit_code if submitted.exit_code is not None else 1
