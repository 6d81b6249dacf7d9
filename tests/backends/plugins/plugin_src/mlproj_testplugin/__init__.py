"""A tiny third-party package providing backends through both entry-point groups (test only).

* ``mlflow.project_backend``: ``recording`` (:class:`RecordingBackend`, an MLflow ``AbstractBackend``)
  writes every argument it receives to ``$TESTPLUGIN_RECORD`` and runs the entry point's
  ``bash -c`` command from ``backend_config['command']`` (MLflow plugins build their own command;
  this one takes it from its config to stay small); ``broken`` fails in ``run()``.
* ``mlproj.backends``: ``native`` (the module :mod:`mlproj_testplugin.native`, with ``submit``).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess

from mlflow.projects.backend.abstract_backend import AbstractBackend
from mlflow.projects.submitted_run import SubmittedRun


class ProcessRun(SubmittedRun):
    def __init__(self, run_id: str, proc: subprocess.Popen, record: str) -> None:
        super().__init__()
        self._run_id = run_id
        self.command_proc = proc
        self.record = record

    @property
    def run_id(self) -> str:
        return self._run_id

    def wait(self) -> bool:
        return self.command_proc.wait() == 0

    def get_status(self) -> str:
        code = self.command_proc.poll()
        return 'RUNNING' if code is None else ('FINISHED' if code == 0 else 'FAILED')

    def cancel(self) -> None:
        with open(self.record + '.cancel', 'w') as f:
            f.write('cancelled')
        if self.command_proc.poll() is None:
            os.killpg(self.command_proc.pid, signal.SIGTERM)
            self.command_proc.wait()


class RecordingBackend(AbstractBackend):
    def run(self, project_uri, entry_point, params, version, backend_config, tracking_uri, experiment_id):
        import mlflow

        record = os.environ['TESTPLUGIN_RECORD']
        with open(record, 'w') as f:
            json.dump({'project_uri': project_uri, 'entry_point': entry_point, 'params': params, 'version': version,
                       'backend_config': backend_config, 'tracking_uri': tracking_uri,
                       'experiment_id': experiment_id, 'fluent_tracking_uri': mlflow.get_tracking_uri()}, f)
        run_id = backend_config['_mlflow_local_backend_run_id']
        env = {**os.environ, 'MLFLOW_RUN_ID': run_id, 'MLFLOW_TRACKING_URI': tracking_uri,
               'MLFLOW_EXPERIMENT_ID': experiment_id}
        proc = subprocess.Popen(['bash', '-c', backend_config['command']], cwd=project_uri, env=env,
                                start_new_session=True)
        return ProcessRun(run_id, proc, record)


class BrokenBackend(AbstractBackend):
    def run(self, *args, **kwargs):
        raise ConnectionError('cannot reach the scheduler at sched.example:1234\nsecond line of detail')
