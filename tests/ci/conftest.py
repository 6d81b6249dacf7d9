"""Fixtures for the GitHub Action / ``mlproj ci`` tests (their plain helpers: ``tests.helpers.ci``).

* ``fake_github``: the strict fake REST API (tests/ci/fake_github.py) on loopback, one per test.
* ``project_repo``: a Git repository holding the fixture project, with a pull_request event
  payload whose head SHA is the repository's HEAD.
* ``actions_env``: a clean GitHub Actions-like environment (no leftovers from the machine).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.ci.fake_github import FakeGitHub
from tests.helpers.ci import OWNER_REPO, clean_environ, gha_env, make_project_repo, new_token


@pytest.fixture
def token() -> str:
    return new_token()


@pytest.fixture
def fake_github(token):
    server = FakeGitHub(token, OWNER_REPO).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def project_repo(tmp_path) -> tuple[Path, str]:
    return make_project_repo(tmp_path)


@pytest.fixture
def actions_env(monkeypatch, tmp_path):
    """Turn this process's environment into a runner's; returns ``configure(workspace, sha, ...)``."""
    for name in list(os.environ):
        if name not in clean_environ():
            monkeypatch.delenv(name, raising=False)
    for k, v in clean_environ().items():
        monkeypatch.setenv(k, v)

    def configure(workspace: Path, head_sha: str, **kw) -> dict[str, str]:
        values = gha_env(tmp_path / 'gha', workspace, head_sha, **kw)
        for k, v in values.items():
            monkeypatch.setenv(k, v)
        return values

    return configure


