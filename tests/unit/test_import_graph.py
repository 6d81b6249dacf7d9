"""mlproj's modules import each other without cycles.

The graph holds the imports that run when a module is imported: statements at module level,
including inside module-level ``if`` / ``try`` blocks, but not ``if TYPE_CHECKING:`` blocks and
not imports inside functions (the lazy imports that keep ``mlproj --help`` fast).  A cycle there
means one of its modules sees the other half-initialised, and that the two are one concept split
in the wrong place.
"""
from __future__ import annotations

import ast
from pathlib import Path

import mlproj

PACKAGE = Path(mlproj.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts.pop()
        out['.'.join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == 'TYPE_CHECKING') or (
        isinstance(test, ast.Attribute) and test.attr == 'TYPE_CHECKING')


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def walk(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append(node)
            elif isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    walk(node.body)
                walk(node.orelse)
            elif isinstance(node, ast.Try):
                walk(node.body)
                for handler in node.handlers:
                    walk(handler.body)
                walk(node.orelse)
                walk(node.finalbody)
            elif isinstance(node, ast.With):
                walk(node.body)

    walk(tree.body)
    return found


def _package_of(name: str, path: Path) -> str:
    return name if path.name == '__init__.py' else name.rpartition('.')[0]


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding='utf-8'), str(path))
        for node in _module_level_imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ''
                if node.level:
                    package = _package_of(name, path).split('.')
                    package = package[:len(package) - (node.level - 1)]
                    base = '.'.join(package + ([base] if base else []))
                targets = [base] + [f'{base}.{alias.name}' for alias in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_checker_sees_cycles() -> None:
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b', 'c'}, 'b': {'c'}, 'c': set()}) is None


def test_the_graph_holds_known_edges() -> None:
    graph = import_graph()
    assert 'mlproj.errors' in graph['mlproj.spec_model']
    assert 'mlproj.spec_model' in graph['mlproj.params']
    assert 'mlproj.source.tree' in graph['mlproj.source.git']  # a multi-line from-import
    assert 'mlproj.spec' not in graph['mlproj.runner']  # imported inside a function only


def test_mlproj_has_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle or ())


def test_loading_a_project_does_not_load_the_linter(tmp_path) -> None:
    """spec and its loader own the model; lint builds on them, never the other way round (the
    suppression comments a run honours live in mlproj/suppress.py, outside the lint package)."""
    import subprocess
    import sys

    (tmp_path / 'MLproject').write_text('name: p\nentry_points:\n  main:\n    parameters: {a: {default: 1}}\n'
                                        '    command: "echo hi"  # mlproj: disable=MLP016\n')
    code = ('import sys; from mlproj.spec import load_project; p = load_project(sys.argv[1]); '
            'print(sorted(p.entry_points), sorted(m for m in sys.modules if m.startswith("mlproj.lint")))')
    out = subprocess.run([sys.executable, '-c', code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["['main']", '[]'], out.stderr
