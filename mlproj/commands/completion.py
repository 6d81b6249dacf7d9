"""``mlproj completion bash|zsh|fish``: print click's completion script for the shell."""
from __future__ import annotations

import click


@click.command('completion')
@click.argument('shell', type=click.Choice(('bash', 'zsh', 'fish')))
def completion(shell: str) -> None:
    """Print the shell completion script: eval "$(mlproj completion bash)" in ~/.bashrc (zsh alike;
    fish: mlproj completion fish > ~/.config/fish/completions/mlproj.fish)."""
    from click.shell_completion import get_completion_class

    from mlproj.cli import cli

    cls = get_completion_class(shell)
    assert cls is not None  # the choice above is exactly click's shells
    click.echo(cls(cli, {}, 'mlproj', '_MLPROJ_COMPLETE').source())
