"""The one value that describes a run request, passed inward through every layer."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from mlproj.envs import CLI_MANAGERS

# the --env-manager choices: the env-manager registry's (mlproj.envs.MANAGERS without docker)
ENV_MANAGERS: tuple[str, ...] = CLI_MANAGERS


@dataclass(frozen=True)
class RunRequest:
    """Everything one run was asked for: the CLI flags and the API arguments, immutable."""

    uri: str = '.'
    entry_point: str = 'main'
    version: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    docker_args: Mapping[str, Any] = field(default_factory=dict)
    experiment_name: str | None = None
    experiment_id: str | None = None
    backend: str = 'local'
    backend_config: Mapping[str, Any] = field(default_factory=dict)
    env_manager: str | None = None
    storage_dir: str | None = None
    run_id: str | None = None
    run_name: str | None = None
    build_image: bool = False
    synchronous: bool = True
    dry_run: bool = False
    keep_checkout: bool = False
    require_clean: bool = False
    strict: bool = False          # refuse what `mlproj lint` reports as errors (default: run as MLflow does)
    reuse: bool = False           # report a FINISHED run with the same inputs instead of running (runcache)
    tracking_uri: str | None = None
    extra_tags: Mapping[str, str] = field(default_factory=dict)
    pass_env: tuple[str, ...] = ()    # names passed to the project despite the child-env policy
    cwd: str = field(default_factory=os.getcwd)
    # an exact environment lock to install instead of the env spec (``mlproj reproduce``; mlproj.envs.lock)
    env_lock: bytes | None = field(default=None, repr=False)
    # an HTTPS Git credential given on the command line (--git-username/--git-password); never shown
    git_username: str | None = field(default=None, repr=False)
    git_password: str | None = field(default=None, repr=False)

    def with_(self, **changes: Any) -> RunRequest:
        return replace(self, **changes)
