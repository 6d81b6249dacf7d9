"""Sweep points from -P lists and sweep files, and the summary table's order (no runs)."""
from __future__ import annotations

import pytest

from mlproj import sweep, sweep_points
from mlproj.errors import BadArgumentError


@pytest.mark.parametrize('text,values', [
    ('a', ['a']),
    ('a,b', ['a', 'b']),
    (r'a\,b', ['a,b']),
    (r'x\,y,z', ['x,y', 'z']),
    (r'a\\,b', ['a\\', 'b']),
    (r'a\b', [r'a\b']),            # other backslashes are kept
    ('', ['']),
    (',', ['', '']),
])
def test_values_split_on_unescaped_commas(text, values):
    assert sweep_points.split_values(text) == values


def test_lists_make_a_grid_and_single_values_constants():
    points, constants, swept = sweep_points.points_from({'alpha': '0.1,0.5,1.0', 'l1': '0.1,0.9', 'seed': '3'})
    assert constants == {'seed': '3'}
    assert swept == ['alpha', 'l1']
    assert len(points) == 6
    assert points[0] == {'seed': '3', 'alpha': '0.1', 'l1': '0.1'}
    assert points[-1] == {'seed': '3', 'alpha': '1.0', 'l1': '0.9'}
    assert len({tuple(sorted(p.items())) for p in points}) == 6


def test_no_list_is_one_point():
    assert sweep_points.points_from({'a': '1'}) == ([{'a': '1'}], {'a': '1'}, [])


def test_sweep_file_grid_and_points(tmp_path):
    f = tmp_path / 'sweep.yaml'
    f.write_text('grid:\n  alpha: [0.1, 0.5]\n  flag: [true, false]\npoints:\n  - {alpha: 2, extra: "a,b"}\n')
    data = sweep_points.read_sweep_file(str(f))
    points, constants, swept = sweep_points.points_from({'seed': '1', 'n': '1,2'}, data)
    assert swept == ['n', 'alpha', 'flag', 'extra']
    assert len(points) == 2 * 2 * 2 + 1
    assert points[-1] == {'seed': '1', 'alpha': '2', 'extra': 'a,b'}   # a literal comma in a file value
    assert {p['flag'] for p in points[:-1]} == {'true', 'false'}


def test_only_explicit_points(tmp_path):
    f = tmp_path / 's.yaml'
    f.write_text('points:\n  - {a: 1}\n  - {a: 2, b: x}\n')
    points, _, swept = sweep_points.points_from({'c': '0'}, sweep_points.read_sweep_file(str(f)))
    assert points == [{'c': '0', 'a': '1'}, {'c': '0', 'a': '2', 'b': 'x'}]
    assert swept == ['a', 'b']


@pytest.mark.parametrize('text,message', [
    ('grid: [1, 2]\n', 'grid'),
    ('grid:\n  a: []\n', 'no values'),
    ('grid:\n  a: [{x: 1}]\n', 'strings or numbers'),
    ('points: {a: 1}\n', 'points'),
    ('other: 1\n', 'a sweep file is a mapping'),
    ('grid: [\n', 'YAML'),
    ('', 'a sweep file is a mapping'),
])
def test_bad_sweep_files_are_one_line_errors(tmp_path, text, message):
    f = tmp_path / 's.yaml'
    f.write_text(text)
    with pytest.raises(BadArgumentError) as e:
        sweep_points.read_sweep_file(str(f))
    assert message in str(e.value) and str(f) in str(e.value) and '\n' not in str(e.value)


def test_sweep_file_that_is_not_a_regular_file(tmp_path):
    with pytest.raises(BadArgumentError, match='does not exist'):
        sweep_points.read_sweep_file(str(tmp_path / 'missing.yaml'))
    with pytest.raises(BadArgumentError, match='not a regular file'):
        sweep_points.read_sweep_file(str(tmp_path))


def test_a_name_both_on_the_command_line_and_in_the_grid_is_refused():
    with pytest.raises(BadArgumentError, match="'a' is given both"):
        sweep_points.points_from({'a': '1'}, {'grid': {'a': ['1', '2']}, 'points': []})


def test_huge_grids_are_refused_before_expansion():
    params = {f'p{i}': ','.join(str(j) for j in range(10)) for i in range(6)}  # 10**6 points
    with pytest.raises(BadArgumentError, match='more than'):
        sweep_points.points_from(params)


def _result(metrics):
    points = [sweep.Point(i, {'a': str(i)}, status='FINISHED', run_id=f'r{i}', metric=m, started=0.0, ended=1.5)
              for i, m in enumerate(metrics)]
    return sweep.SweepResult('parent', 'FINISHED', points, ['a'], metric='rmse')


def test_table_is_best_first_with_missing_metrics_last():
    r = _result([0.5, None, 0.1, float('nan'), 0.3])
    assert [p.index for p in sweep.ordered(r, 'min')] == [2, 4, 0, 1, 3]
    assert [p.index for p in sweep.ordered(r, 'max')] == [0, 4, 2, 1, 3]
    lines = sweep.table(r, 'min').splitlines()
    assert lines[0].split() == ['#', 'a', 'status', 'duration', 'run', 'id', 'rmse']
    assert lines[2].split() == ['2', '2', 'FINISHED', '1.5s', 'r2', '0.1']
    assert [line.split()[-1] for line in lines[-2:]] == ['-', 'nan']  # missing, then NaN


def test_overall_status():
    def pts(*statuses):
        return [sweep.Point(i, {}, status=s) for i, s in enumerate(statuses)]

    assert sweep._overall(pts('FINISHED', 'REUSED')) == 'FINISHED'
    assert sweep._overall(pts('FINISHED', 'FAILED')) == 'FAILED'
    assert sweep._overall(pts('FINISHED', 'KILLED', 'SKIPPED')) == 'KILLED'
    assert sweep._overall(pts('FAILED', 'KILLED')) == 'FAILED'
