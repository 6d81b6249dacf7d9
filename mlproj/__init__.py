"""mlproj: run MLflow Projects fast, Git-native and validated.

Public API::

    import mlproj
    run = mlproj.run('https://github.com/org/repo#sub', 'train', version='v1.2',
                     parameters={'alpha': 0.5}, experiment_name='demo')
    run.run_id, run.get_status()

    project = mlproj.load_project('path/to/project')

Heavy modules (mlflow, pygit2) are imported only when a run needs them.
"""
from __future__ import annotations

from typing import Any

from mlproj.errors import MlprojError, RunFailed

__version__ = '0.1.0'
__all__ = ['run', 'load_project', 'SubmittedRun', 'RunRequest', 'MlprojError', 'RunFailed', '__version__']


def run(uri: str = '.', entry_point: str = 'main', **options: Any):
    """Run a project and return a ``SubmittedRun``.

    ``options`` are the fields of :class:`mlproj.request.RunRequest`: ``version``, ``parameters``,
    ``docker_args``, ``experiment_name``, ``experiment_id``, ``backend``, ``backend_config`` (a dict
    or the path of a ``.json`` file), ``env_manager``, ``storage_dir``, ``run_id``, ``run_name``,
    ``build_image``, ``synchronous`` (default True), ``tracking_uri``, ``keep_checkout``,
    ``require_clean``, ``pass_env`` (names passed to the project despite the child-environment policy).  With ``synchronous=True`` a failed run raises :class:`RunFailed`.
    """
    from mlproj.request import RunRequest
    from mlproj.runner import load_backend_config, submit

    if 'backend_config' in options:
        options['backend_config'] = load_backend_config(options['backend_config'])
    if options.get('parameters') is not None:
        options['parameters'] = dict(options['parameters'])
    else:
        options.pop('parameters', None)
    request = RunRequest(uri=uri, entry_point=entry_point, **options)
    submitted = submit(request)
    if request.synchronous:
        try:
            ok = submitted.wait()
        except KeyboardInterrupt:
            submitted.cancel()
            raise
        problem = getattr(submitted, 'tracking_problem', None)
        if problem:
            from mlproj.errors import TrackingError

            raise TrackingError(problem)
        if not ok:
            raise RunFailed(f"run {submitted.run_id} {submitted.get_status()}", submitted.exit_code or 1)
    return submitted


def load_project(path: str = '.'):
    """Load and validate the project in directory ``path`` (raises ``SpecError`` when invalid)."""
    from mlproj.spec import load_project as _load

    return _load(path)


def __getattr__(name: str) -> Any:
    if name == 'SubmittedRun':
        from mlproj.backends import SubmittedRun

        return SubmittedRun
    if name == 'RunRequest':
        from mlproj.request import RunRequest

        return RunRequest
    raise AttributeError(name)
