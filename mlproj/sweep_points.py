"""A sweep's points: ``-P`` value lists (``\\,`` a literal comma) and sweep files, crossed into
the list of parameter sets ``mlproj.sweep`` runs (``points_from``), at most ``MAX_POINTS``.
"""
from __future__ import annotations

import itertools
from typing import Any

from mlproj.errors import BadArgumentError

MAX_POINTS = 10_000


def split_values(text: str) -> list[str]:
    """``a,b\\,c`` -> ``['a', 'b,c']``: commas separate, ``\\,`` and ``\\\\`` escape."""
    out, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == '\\' and i + 1 < len(text) and text[i + 1] in ',\\':
            cur.append(text[i + 1])
            i += 2
            continue
        if ch == ',':
            out.append(''.join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    out.append(''.join(cur))
    return out


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (int, float, str)):
        return str(value)
    if value is None:
        return 'None'
    raise BadArgumentError(f'sweep values must be strings or numbers, got {type(value).__name__}', where)


def read_sweep_file(path: str) -> dict[str, Any]:
    """``grid`` and ``points`` of a sweep file (YAML), checked."""
    from mlproj import safefile, spec

    try:
        text = safefile.read_text(path, None, limit=4 * 1024 * 1024, what='sweep file')
    except safefile.Refused as e:
        raise BadArgumentError(e.message, path) from None
    except UnicodeDecodeError:
        raise BadArgumentError('sweep file is not UTF-8 text', path) from None
    data, doc = spec.parse_yaml(text)
    if doc.findings:
        f = doc.findings[0]
        raise BadArgumentError(f.message, f'{path}:{f.line}:{f.col}' if f.line else path)
    if not isinstance(data, dict) or not data or set(data) - {'grid', 'points'}:
        raise BadArgumentError('a sweep file is a mapping with "grid" (name: [values]) and/or "points" '
                               '(a list of {name: value})', path)
    grid: dict[str, list[str]] = {}
    raw_grid = data.get('grid') or {}
    if not isinstance(raw_grid, dict):
        raise BadArgumentError('"grid" must map parameter names to lists of values', path)
    for name, values in raw_grid.items():
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise BadArgumentError(f'grid parameter {name!r} has no values', path)
        grid[str(name)] = [_scalar(v, f'{path}: grid.{name}') for v in values]
    points: list[dict[str, str]] = []
    raw_points = data.get('points') or []
    if not isinstance(raw_points, list) or not all(isinstance(p, dict) for p in raw_points):
        raise BadArgumentError('"points" must be a list of mappings (name: value)', path)
    for i, p in enumerate(raw_points):
        points.append({str(k): _scalar(v, f'{path}: points[{i}].{k}') for k, v in p.items()})
    return {'grid': grid, 'points': points}


def points_from(params: dict[str, str], sweep_file: dict[str, Any] | None = None
                ) -> tuple[list[dict[str, str]], dict[str, str], list[str]]:
    """(points, constants, swept names) from ``-P`` values and an optional sweep file.

    ``-P`` values with an unescaped comma are axes of the grid, others constants.  The file's
    ``grid`` axes join the command line's (a name on both is an error); the grid's points come
    first, then the file's explicit ``points`` (each over the constants).  No grid and no
    points: one point, the constants."""
    constants: dict[str, str] = {}
    axes: dict[str, list[str]] = {}
    for name, raw in params.items():
        values = split_values(raw)
        if len(values) > 1:
            axes[name] = values
        else:
            constants[name] = values[0]
    explicit: list[dict[str, str]] = []
    if sweep_file:
        for name, values in sweep_file['grid'].items():
            if name in params:
                raise BadArgumentError(f'parameter {name!r} is given both with -P and in the sweep file\'s grid')
            axes[name] = values
        explicit = sweep_file['points']
    points: list[dict[str, str]] = []
    total = 1
    for values in axes.values():
        total *= len(values)
        if total > MAX_POINTS:
            raise BadArgumentError(f'the sweep has more than {MAX_POINTS} points')
    if axes or not explicit:
        for combo in itertools.product(*axes.values()):
            points.append({**constants, **dict(zip(axes, combo))})
    for p in explicit:
        points.append({**constants, **p})
    if len(points) > MAX_POINTS:
        raise BadArgumentError(f'the sweep has more than {MAX_POINTS} points')
    swept = list(axes)
    for p in explicit:
        swept += [k for k in p if k not in swept]
    return points, constants, swept


# -- running ------------------------------------------------------------------------------------
