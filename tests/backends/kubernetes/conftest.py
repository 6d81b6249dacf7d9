"""Fixtures of the kubernetes backend tests: a strict fake API server (see fake_kube) and a kubeconfig."""
from __future__ import annotations

import pytest

from tests.backends.kubernetes.fake_kube import FakeKube, kubeconfig
from tests.helpers import free_port

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
    dead = free_port()                   # nothing listens there
    config = kubeconfig(tmp_path / 'kubeconfig', {'fake': (fake.url, fake.token),
                                                  'dead': (f'http://127.0.0.1:{dead}', 'x')}, current='fake')
    monkeypatch.setenv('KUBECONFIG', str(config))
    template = tmp_path / 'job.yaml'
    template.write_text(TEMPLATE)
    fake.template = template
    yield fake
    fake.stop()
