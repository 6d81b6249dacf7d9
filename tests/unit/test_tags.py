"""Tag names and MLflow run statuses are written out once, in mlproj/tags.py.

A literal ``'mlflow.source.git.commit'`` (or any other value of mlproj.tags) anywhere else in
``mlproj/`` is a second home for that name, free to drift from the first: this test fails on it.
The exceptions are the keys of the engine state tables of the Ray and Slurm backends: the
engine's own state names, some of which happen to read ``RUNNING`` or ``FAILED`` (only status
names are exempt there; a tag name is a literal like anywhere else).
"""
from __future__ import annotations

import ast
from pathlib import Path

from mlproj import tags

PKG = Path(tags.__file__).parent
VALUES = {v for k, v in vars(tags).items() if k.isupper() and isinstance(v, str)}
ENGINE_TABLES = {'backends/ray.py', 'backends/slurm.py'}
STATUSES = set(tags.RUN_STATUSES)


def _literals(path: Path, rel: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    engine_keys: set[int] = set()
    docstrings: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and rel in ENGINE_TABLES:
            engine_keys.update(id(k) for k in node.keys if isinstance(k, ast.Constant) and k.value in STATUSES)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            docstrings.add(id(node.value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in VALUES
            and id(node) not in engine_keys and id(node) not in docstrings]


def test_no_tag_name_or_status_is_spelled_out_outside_tags_py():
    found = [f'{p.relative_to(PKG)}:{line}: {value!r}' for p in sorted(PKG.rglob('*.py'))
             if p != PKG / 'tags.py' for line, value in _literals(p, str(p.relative_to(PKG)))]
    assert found == [], 'use the constants of mlproj/tags.py:\n' + '\n'.join(found)


def test_the_check_sees_a_reintroduced_literal(tmp_path):
    planted = tmp_path / 'planted.py'
    planted.write_text("X = {'mlflow.source.git.commit': 1, 'RUNNING': 2}\nSTATUS = 'KILLED'\n")
    assert sorted(v for _, v in _literals(planted, 'backends/planted.py')) == \
        ['KILLED', 'RUNNING', 'mlflow.source.git.commit']
    # the same table in an engine backend: a status-named key is the engine's name, a tag name is not
    assert sorted(v for _, v in _literals(planted, 'backends/ray.py')) == ['KILLED', 'mlflow.source.git.commit']


def test_values_are_unique_and_named_by_their_home():
    names = [k for k, v in vars(tags).items() if k.isupper() and isinstance(v, str)]
    values = [getattr(tags, k) for k in names]
    assert len(values) == len(set(values))
    assert all(v.startswith(('mlflow.', 'mlproj.')) or v.isupper() for v in values)
