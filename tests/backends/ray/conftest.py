"""Fixtures of the ray backend tests (see ray_helpers for how the Ray head is run)."""
from __future__ import annotations

import pytest

from tests.backends.ray.ray_helpers import RayHead, ensure_ray_venv


@pytest.fixture(scope='session')
def ray_head():
    head = RayHead(ensure_ray_venv())
    try:
        head.start()
        yield head
    finally:
        head.stop()


@pytest.fixture(scope='session')
def ray_client(ray_head):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(ray_head.address)


@pytest.fixture
def tracking_uri(tracking_uri, monkeypatch):  # the shared file store, and no ambient Ray cluster
    monkeypatch.delenv('RAY_ADDRESS', raising=False)
    return tracking_uri
