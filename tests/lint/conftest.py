"""Fixtures of the lint tests (their plain helpers: ``tests.helpers.lint``)."""
from __future__ import annotations

import pytest

from tests.helpers.git import IDENTITY


@pytest.fixture
def git_env(tmp_path, monkeypatch):
    """An isolated git identity and config for commits in temporary repositories."""
    home = tmp_path / 'home'
    home.mkdir()
    # for the git that tools under test run themselves (hooks, pre-commit); the tests' own git
    # commands go through tests.helpers.git
    values = {'HOME': str(home), 'GIT_CONFIG_NOSYSTEM': '1', **IDENTITY, 'XDG_CONFIG_HOME': str(home / '.config')}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values
