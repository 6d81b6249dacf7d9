"""``--env-manager local``: run in the caller's own environment."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlproj.envs import EnvContext
from mlproj.spec_model import Project


@dataclass(frozen=True)
class LocalEnvironment:
    """The caller's own interpreter and PATH (``--env-manager local``)."""

    manager: str = 'local'
    tag: str | None = None
    hash: str | None = None

    def argv(self, command: str, env: dict[str, str], cwd: Path) -> tuple[list[str], dict[str, str]]:
        return ['bash', '-c', command], env


def prepare(project: Project, ctx: EnvContext) -> LocalEnvironment:
    return LocalEnvironment()
