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

from typing import TYPE_CHECKING, Any

from mlproj.errors import MlprojError, RunFailed

if TYPE_CHECKING:  # types for mypy/pyright (py.typed ships in the wheel); nothing heavy is imported at run time
    import os
    from collections.abc import Mapping

    from typing_extensions import TypedDict, Unpack

    from mlproj.backends import SubmittedRun
    from mlproj.request import RunRequest
    from mlproj.spec import Project

    class RunOptions(TypedDict, total=False):
        """The keyword arguments of :func:`run`: the fields of ``RunRequest`` (type checking only)."""

        version: str | None
        parameters: Mapping[str, Any] | None
        docker_args: Mapping[str, Any]
        experiment_name: str | None
        experiment_id: str | None
        backend: str
        backend_config: Mapping[str, Any] | str | os.PathLike[str] | None  # a dict or a .json path
        env_manager: str | None
        storage_dir: str | None
        run_id: str | None
        run_name: str | None
        build_image: bool
        synchronous: bool
        dry_run: bool
        keep_checkout: bool
        require_clean: bool
        tracking_uri: str | None
        extra_tags: Mapping[str, str]
        cwd: str

__version__ = '0.1.0'
__all__ = ['run', 'load_project', 'SubmittedRun', 'RunRequest', 'MlprojError', 'RunFailed', '__version__']


def run(uri: str = '.', entry_point: str = 'main', **options: Unpack[RunOptions]) -> SubmittedRun:
    """Run a project and return a ``SubmittedRun``.

    ``options`` are the fields of :class:`mlproj.request.RunRequest`: ``version``, ``parameters``,
    ``docker_args``, ``experiment_name``, ``experiment_id``, ``backend``, ``backend_config`` (a dict
    or the path of a ``.json`` file), ``env_manager``, ``storage_dir``, ``run_id``, ``run_name``,
    ``build_image``, ``synchronous`` (default True), ``tracking_uri``, ``keep_checkout``,
    ``require_clean``, ``pass_env`` (names passed to the project despite the child-environment policy).
    With ``synchronous=True`` a failed run raises :class:`RunFailed`.
    """
    from mlproj.request import RunRequest
    from mlproj.runner import load_backend_config, submit

    fields: dict[str, Any] = dict(options)
    if 'backend_config' in fields:
        fields['backend_config'] = load_backend_config(fields['backend_config'])
    if fields.get('parameters') is not None:
        fields['parameters'] = dict(fields['parameters'])
    else:
        fields.pop('parameters', None)
    request = RunRequest(uri=uri, entry_point=entry_point, **fields)
    submitted: SubmittedRun = submit(request)
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


def load_project(path: str | os.PathLike[str] = '.') -> Project:
    """Load and validate the project in directory ``path`` (raises ``SpecError`` when invalid)."""
    from mlproj.spec import load_project as _load

    return _load(path)


if not TYPE_CHECKING:  # hidden from type checkers, which see the imports above and nothing else

    def __getattr__(name: str) -> Any:
        if name == 'SubmittedRun':
            from mlproj.backends import SubmittedRun

            return SubmittedRun
        if name == 'RunRequest':
            from mlproj.request import RunRequest

            return RunRequest
        raise AttributeError(name)
