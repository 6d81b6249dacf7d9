"""YAML with positions: one document parsed into plain values plus the line and column of every
key and value, duplicate keys reported, and a node budget that stops hostile documents.

``parse_yaml`` never raises on bad content: syntax errors, duplicate keys (MLP002), non-scalar
keys (MLP003) and documents that expand past the budget become ``Finding``s (MLP001) on the
returned ``Doc``.  The loader of MLproject files (``mlproj.spec_loader``), the env-file readers
(``mlproj.envs.envfiles``) and the linter read YAML only through here.  PyYAML is imported on
first use, and not at all for a document parsed before (``mlproj.yamlcache``).
"""
from __future__ import annotations

from typing import Any

from mlproj.errors import first_line
from mlproj.findings import Finding

Pos = tuple[int, int]  # 1-based line, column


class Doc:
    """The constructed document plus the position of every key and value, by path."""

    def __init__(self) -> None:
        self.key_pos: dict[tuple, Pos] = {}
        self.value_pos: dict[tuple, Pos] = {}
        self.value_end: dict[tuple, Pos] = {}
        self.findings: list[Finding] = []
        self.budget = _NODE_BUDGET
        self.merged: dict[int, list] = {}  # id(mapping node) -> its flattened merge pairs


# An MLproject has a few hundred nodes.  The budget is spent twice, and both times as the work
# happens: by the composer for every node and alias it creates (so a huge document stops early,
# not after it is all in memory), then by the constructor for every node it visits, aliases
# expanded and ``<<`` merge pairs included ("billion laughs", merge-key bombs).  mlproj flattens
# merges itself, so an old PyYAML whose ``flatten_mapping`` blows up is never asked to.
_NODE_BUDGET = 100_000
_MERGE_TAG = 'tag:yaml.org,2002:merge'


class _TooLarge(Exception):
    pass


def _mark(node: Any) -> Pos:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _end(node: Any) -> Pos:
    return (node.end_mark.line + 1, node.end_mark.column + 1)


def _spend(doc: Doc, n: int = 1) -> None:
    doc.budget -= n
    if doc.budget < 0:
        raise _TooLarge(f'the document expands to more than {_NODE_BUDGET} nodes (aliases or << merges?)')


def _merge_pairs(node: Any, doc: Doc, loader: Any, active: frozenset) -> list:
    """The (key node, value node) pairs ``<<`` keys of ``node`` bring in, YAML merge semantics:
    a key of the mapping itself wins over a merged one, and earlier merged mappings win over
    later ones.  Each mapping is flattened once (memoised); every pair considered costs budget."""
    import yaml

    cached = doc.merged.get(id(node))
    if cached is not None:
        _spend(doc, len(cached))
        return cached
    if id(node) in active:
        raise _TooLarge('a << merge refers to a mapping that contains it (recursive structure)')
    inner = active | {id(node)}
    sources = []
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE_TAG:
            continue
        if isinstance(value_node, yaml.MappingNode):
            sources.append(value_node)
        elif isinstance(value_node, yaml.SequenceNode):
            for sub in value_node.value:
                if not isinstance(sub, yaml.MappingNode):
                    raise yaml.constructor.ConstructorError(
                        'while constructing a mapping', node.start_mark,
                        f'expected a mapping for merging, but found {sub.id}', sub.start_mark)
                sources.append(sub)
        else:
            raise yaml.constructor.ConstructorError(
                'while constructing a mapping', node.start_mark,
                f'expected a mapping or list of mappings for merging, but found {value_node.id}',
                value_node.start_mark)
    out: list = []
    seen: set = set()
    for source in sources:
        for key_node, value_node in _merge_pairs(source, doc, loader, inner) + [
                p for p in source.value if p[0].tag != _MERGE_TAG]:
            _spend(doc)
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = loader.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    continue
                seen.add(key)
            except TypeError:
                continue
            out.append((key_node, value_node))
    doc.merged[id(node)] = out
    return out


def _construct(node: Any, path: tuple, doc: Doc, loader: Any, active: frozenset = frozenset()) -> Any:
    import yaml

    _spend(doc)
    doc.value_pos[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        if id(node) in active:
            raise _TooLarge('an alias refers to a mapping that contains it (recursive structure)')
        inner = active | {id(node)}
        out: dict = {}
        own = [(k, v) for k, v in node.value if k.tag != _MERGE_TAG]
        merged = _merge_pairs(node, doc, loader, active) if len(own) != len(node.value) else []
        own_keys = set()
        for key_node, _ in own:
            if isinstance(key_node, yaml.ScalarNode):
                try:
                    own_keys.add(loader.construct_object(key_node, deep=True))
                except TypeError:
                    pass
        for key_node, value_node in merged:
            key = loader.construct_object(key_node, deep=True)
            if key in own_keys:
                continue
            doc.key_pos[path + (key,)] = _mark(key_node)
            out[key] = _construct(value_node, path + (key,), doc, loader, inner)
        explicit: set = set()
        for key_node, value_node in own:
            if key_node.tag == 'tag:yaml.org,2002:value':
                key_node.tag = 'tag:yaml.org,2002:str'
            if not isinstance(key_node, yaml.ScalarNode):
                doc.findings.append(Finding('MLP003', 'mapping key must be a scalar', *_mark(key_node)))
                continue
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:  # e.g. a key tagged !!set
                doc.findings.append(Finding('MLP003', 'mapping key must be a scalar', *_mark(key_node)))
                continue
            if key in explicit:
                first = doc.key_pos.get(path + (key,), (0, 0))
                doc.findings.append(Finding(
                    'MLP002', f'duplicate key {key!r} (first defined at line {first[0]})', *_mark(key_node)))
            explicit.add(key)
            doc.key_pos[path + (key,)] = _mark(key_node)
            out[key] = _construct(value_node, path + (key,), doc, loader, inner)
        return out
    if isinstance(node, yaml.SequenceNode):
        if id(node) in active:
            raise _TooLarge('an alias refers to a list that contains it (recursive structure)')
        inner = active | {id(node)}
        return [_construct(item, path + (i,), doc, loader, inner) for i, item in enumerate(node.value)]
    doc.value_end[path] = _end(node)
    return loader.construct_object(node, deep=True)


_LOADERS: dict[str, Any] = {}


def _loader_class() -> Any:
    """A SafeLoader whose composer spends the node budget as it creates nodes.

    With libyaml (shipped in PyYAML's wheels) the C parser produces the events and PyYAML's
    Python composer, subclassed here, builds the nodes: the scanner and parser, where the time
    goes, stay in C.  Construction (and so every value's type) is the same SafeConstructor
    either way.
    """
    if _LOADERS:
        return _LOADERS['loader']
    import yaml
    from yaml.composer import Composer
    from yaml.constructor import SafeConstructor
    from yaml.resolver import Resolver

    class _BudgetComposer(Composer):
        _budget = _NODE_BUDGET

        def compose_node(self, parent: Any, index: Any) -> Any:
            self._budget -= 1
            if self._budget < 0:
                raise _TooLarge(f'the document has more than {_NODE_BUDGET} nodes')
            return super().compose_node(parent, index)

    try:
        from yaml.cyaml import CParser as c_parser
    except ImportError:  # PyYAML built without libyaml
        c_parser = None
    if c_parser is not None:
        class _Loader(_BudgetComposer, c_parser, SafeConstructor, Resolver):  # type: ignore[misc, valid-type]
            libyaml = True

            def __init__(self, stream: Any) -> None:
                c_parser.__init__(self, stream)
                Composer.__init__(self)
                SafeConstructor.__init__(self)
                Resolver.__init__(self)
    else:
        class _Loader(_BudgetComposer, yaml.SafeLoader):  # type: ignore[no-redef]
            libyaml = False
    _LOADERS['loader'] = _Loader
    return _Loader


def parse_yaml(text: str) -> tuple[Any, Doc]:
    """Parse one YAML document keeping positions; syntax errors become an MLP001 finding.
    A clean parse of the same text is remembered (``mlproj.yamlcache``): PyYAML is then not loaded."""
    from mlproj import yamlcache

    known = yamlcache.load(text)
    if known is not None:
        return known
    data, doc = _parse(text)
    yamlcache.store(text, data, doc)
    return data, doc


def _parse(text: str) -> tuple[Any, Doc]:
    import yaml

    doc = Doc()
    loader = None
    try:
        loader = _loader_class()(text)  # the reader rejects control characters here already
        node = loader.get_single_node()
        if node is None:
            return None, doc
        return _construct(node, (), doc, loader), doc
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = (e.problem or e.context or 'invalid YAML').strip()
        doc.findings.append(Finding('MLP001', f'YAML syntax error: {problem}', line, col))
        return None, doc
    except yaml.YAMLError as e:  # ReaderError (bad bytes) has a position but no mark
        position = getattr(e, 'position', None)
        line, col = 0, 0
        if isinstance(position, int) and position >= 0:
            before = text.encode('utf-8', 'surrogatepass')[:position].decode('utf-8', 'replace') \
                if getattr(loader, 'libyaml', False) else text[:position]
            line = before.count('\n') + 1
            col = len(before) - (before.rfind('\n') + 1) + 1
        doc.findings.append(Finding('MLP001', f'YAML error: {first_line(e, 200)}', line, col))
        return None, doc
    except _TooLarge as e:
        doc.findings.append(Finding('MLP001', f'YAML cannot be read: {e}', 0, 0))
        return None, doc
    except (ValueError, TypeError, OverflowError, RecursionError) as e:
        # e.g. an out-of-range timestamp, or pathological nesting
        doc.findings.append(Finding('MLP001', f'YAML value cannot be read: {first_line(e, 200)}', 0, 0))
        return None, doc
    finally:
        if loader is not None:
            loader.dispose()


def locate_in_value(doc: Doc, text: str, path: tuple, needle: str) -> Pos | None:
    """The 1-based position of ``needle`` inside the scalar at ``path``, when the source shows it verbatim."""
    start, end = doc.value_pos.get(path), doc.value_end.get(path)
    if not (start and end and text):
        return None
    lines = text.splitlines()
    for number in range(start[0], min(end[0], len(lines)) + 1):
        offset = lines[number - 1].find(needle, start[1] - 1 if number == start[0] else 0)
        if offset != -1:
            return number, offset + 1
    return None


def kind_of(value: Any) -> str:
    """How a message names a YAML value's type (``a mapping``, ``null``, ...)."""
    if value is None:
        return 'null'
    return {dict: 'a mapping', list: 'a list', str: 'a string', bool: 'a boolean', int: 'a number',
            float: 'a number'}.get(type(value), type(value).__name__)
