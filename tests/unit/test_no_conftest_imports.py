"""No test module imports from a conftest: fixtures come from pytest, plain helpers from tests.helpers."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO


def conftest_imports(root: Path) -> list[str]:
    """``path:line`` of every import of a conftest module in the ``*.py`` files under ``root``."""
    found = []
    for path in sorted(root.rglob('*.py')):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or '']
                if node.module is None or node.level:  # `from . import conftest`, `from .conftest import x`
                    modules += [alias.name for alias in node.names]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            if any(m.split('.')[-1] == 'conftest' for m in modules):
                found.append(f'{path.relative_to(root)}:{node.lineno}')
    return found


def test_no_test_module_imports_from_a_conftest():
    found = conftest_imports(REPO / 'tests')
    assert found == [], f'import plain helpers from tests.helpers, not from a conftest: {found}'


def test_the_scan_finds_a_planted_conftest_import(tmp_path):
    (tmp_path / 'pkg').mkdir()
    (tmp_path / 'pkg' / 'test_clean.py').write_text('from tests.helpers.git import git\n')
    (tmp_path / 'pkg' / 'test_a.py').write_text('import os\n\nfrom tests.source.conftest import git\n')
    (tmp_path / 'pkg' / 'test_b.py').write_text('def f():\n    import tests.ci.conftest as c\n')
    (tmp_path / 'pkg' / 'test_c.py').write_text('from .conftest import REPO\nfrom . import conftest\n')
    assert conftest_imports(tmp_path) == ['pkg/test_a.py:3', 'pkg/test_b.py:2', 'pkg/test_c.py:1',
                                          'pkg/test_c.py:2']
