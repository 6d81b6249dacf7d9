"""The --env-manager choices come from the env-manager registry (``mlproj.envs.MANAGERS``), and
knowing them stays cheap for the CLI."""
from __future__ import annotations

import importlib
import subprocess
import sys

import click
import pytest

from mlproj import envs, request
from mlproj.cli import COMMANDS


def test_cli_choices_are_the_registry_without_docker():
    assert request.ENV_MANAGERS == envs.CLI_MANAGERS == tuple(m for m in envs.MANAGERS if m != 'docker')
    assert set(envs.DEFAULT_FOR_KIND.values()) <= set(request.ENV_MANAGERS)


@pytest.mark.parametrize('name', sorted(envs.MANAGERS))
def test_every_registered_manager_has_a_prepare(name):
    assert callable(importlib.import_module(envs.MANAGERS[name]).prepare)


def _env_manager_choices() -> dict[str, tuple[str, ...]]:
    found = {}
    for name, (module, attr, _help) in COMMANDS.items():
        command = getattr(importlib.import_module(module), attr)
        commands = {name: command}
        if isinstance(command, click.Group):
            commands = {f'{name} {sub}': c for sub, c in command.commands.items()}
        for path, c in commands.items():
            for p in c.params:
                if '--env-manager' in getattr(p, 'opts', ()):
                    found[path] = tuple(p.type.choices)
    return found


def test_every_env_manager_option_offers_the_registry_choices():
    choices = _env_manager_choices()
    assert {'run', 'reproduce', 'ci run', 'ci env-key', 'env build'} <= set(choices)
    for path, offered in choices.items():
        # `env build` builds an environment: local has none to build
        expected = tuple(m for m in request.ENV_MANAGERS if m != 'local') if path == 'env build' \
            else request.ENV_MANAGERS
        assert offered == expected, path


def test_importing_the_request_stays_cheap():
    code = ('import sys, mlproj.request\n'
            'print(sorted(m for m in sys.modules if m.startswith(("mlproj.", "yaml", "click", "mlflow"))))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['mlproj.envs', 'mlproj.errors', 'mlproj.request']"
