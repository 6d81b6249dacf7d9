"""``mlproj schema``: print the JSON Schema (draft-07, as SchemaStore asks) of the MLproject file."""
from __future__ import annotations

import click

SCHEMA_PACKAGE = 'mlproj.schemas'
SCHEMA_FILE = 'mlproject.schema.json'


def schema_text() -> str:
    """The schema shipped in the package (``mlproj/schemas/mlproject.schema.json``)."""
    from importlib.resources import files

    return files(SCHEMA_PACKAGE).joinpath(SCHEMA_FILE).read_text(encoding='utf-8')


@click.command('schema')
@click.option('-o', '--output', type=click.Path(dir_okay=False, writable=True), default=None,
              help='Write the schema to this file instead of stdout.')
def schema(output: str | None) -> None:
    """Print the JSON Schema of MLproject files (for editors and check-jsonschema)."""
    text = schema_text()
    if output:
        with open(output, 'w', encoding='utf-8') as f:
            f.write(text)
        return
    click.echo(text, nl=not text.endswith('\n'))
