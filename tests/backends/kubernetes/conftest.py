"""Fixtures of the kubernetes backend tests: a strict fake API server (see fake_kube) and a kubeconfig."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from tests.backends.kubernetes.fake_kube import FakeKube, kubeconfig

TEMPLATE = '''apiVersion: batch/v1
kind: Job
metadata:
  name: "{replaced with MLflow Project name}"
  namespace: mlflow
spec:
  ttlSecondsAfterFinished: 100
  backoffLimit: 0
  template:
    spec:
      containers:
      - name: "{replaced with MLflow Project name}"
        image: "{replaced with URI of Docker image created during Project execution}"
        command: ["{replaced with MLflow Project entry point command}"]
        env:
        - "{appended with MLFLOW_TRACKING_URI, MLFLOW_RUN_ID and MLFLOW_EXPERIMENT_ID}"
        - {name: FROM_TEMPLATE, value: kept}
        resources:
          limits: {memory: 512Mi}
          requests: {memory: 256Mi}
      restartPolicy: Never
'''


@pytest.fixture
def tracking_uri(tracking_uri, monkeypatch):  # the shared file store, without a pod-side override
    monkeypatch.delenv('KUBE_MLFLOW_TRACKING_URI', raising=False)
    return tracking_uri


@pytest.fixture
def kube(tmp_path, tracking_uri, monkeypatch):
    """The fake API server, its kubeconfig (contexts: fake, dead) and the Job template."""
    workdir = tmp_path / 'proj'          # stands for the image's working directory
    workdir.mkdir()
    scratch = tmp_path / 'kube'
    scratch.mkdir()
    fake = FakeKube(workdir, scratch).start()
    import socket

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        dead = s.getsockname()[1]
    config = kubeconfig(tmp_path / 'kubeconfig', {'fake': (fake.url, fake.token),
                                                  'dead': (f'http://127.0.0.1:{dead}', 'x')}, current='fake')
    monkeypatch.setenv('KUBECONFIG', str(config))
    template = tmp_path / 'job.yaml'
    template.write_text(TEMPLATE)
    fake.template = template
    yield fake
    fake.stop()


@pytest.fixture
def project(tmp_path):
    def make(mlproject, files=None):
        root = tmp_path / 'proj'
        root.mkdir(exist_ok=True)
        (root / 'MLproject').write_text(mlproject)
        for name, text in (files or {}).items():
            (root / name).write_text(text)
        return root
    return make


def mlproj_argv(*args: str) -> list[str]:
    return [sys.executable, '-m', 'mlproj', *args]


@pytest.fixture
def run_mlproj(tracking_uri, tmp_path):
    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(mlproj_argv(*args), capture_output=True, text=True, timeout=timeout,
                              cwd=tmp_path, env=dict(os.environ))
    return run
