"""Benchmark hostile inputs (issue 12): what refusing them costs, side by side with what they cost before.

* a << merge-key bomb (under 1 KB): PyYAML's own loader (CSafeLoader) with PyYAML 6.0.3 and with
  the installed PyYAML, and mlproj's loader (spec.parse_yaml, which flattens merges itself) on both;
* `mlproj lint` of an MLproject that is a FIFO, a symlink to /dev/zero, a 50 MB file of 1.4 M keys
  (refused by size), the same with MLPROJ_MAX_FILE_BYTES raised (refused by the node budget while
  composing): wall time and max RSS of the process;
* the cost of composing with the budget: 1000 ordinary MLproject texts parsed with the C composer
  (PyYAML's CSafeLoader.get_single_node) and with mlproj's budget composer (C events, Python nodes).

    python benchmarks/bench_hostile.py [--old-python /path/to/venv-with-pyyaml-6.0.3/bin/python]
                                       [--out benchmarks/results/hostile.md]
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MLPROJ = str(Path(sys.executable).with_name('mlproj'))


def merge_bomb(levels: int) -> str:
    lines = ['a0: &a0 {k: 0}']
    for i in range(1, levels):
        lines.append(f'a{i}: &a{i} {{<<: [*a{i - 1}, *a{i - 1}], k{i}: {i}}}')
    return '\n'.join(lines) + '\n'


def timed_python(python: str, code: str, setup: str = '', timeout: float = 120) -> tuple[str, str]:
    """(wall time or 'killed', max RSS MB) of ``code`` in a fresh interpreter; start-up and ``setup`` excluded."""
    wrapper = (setup + '\nimport time as _time, resource as _resource\n_t0 = _time.perf_counter()\n' + code +
               '\nprint(f"{_time.perf_counter() - _t0:.3f} '
               '{_resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss // 1024}")\n')
    env = dict(os.environ, PYTHONPATH=str(REPO))
    try:
        out = subprocess.run([python, '-c', wrapper], capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return f'> {timeout:.0f} s (killed)', '?'
    if out.returncode != 0:
        return 'error: ' + out.stderr.strip().splitlines()[-1], '?'
    secs, rss = out.stdout.split()[-2:]
    return f'{float(secs) * 1000:.0f} ms', rss


def cli(args: list[str], cwd: Path, env: dict | None = None) -> tuple[str, str, str]:
    wrapper = ('import os, subprocess, sys, time\nt = time.perf_counter()\n'
               'p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)\n'
               'out = p.stdout.read()\n_, status, ru = os.wait4(p.pid, 0)\n'
               'print(f"{time.perf_counter() - t:.3f} {ru.ru_maxrss // 1024} {os.waitstatus_to_exitcode(status)}")\n')
    out = subprocess.run([sys.executable, '-c', wrapper, MLPROJ, *args], cwd=cwd, capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, **(env or {})))
    secs, rss, code = out.stdout.split()[-3:]
    return f'{float(secs) * 1000:.0f} ms', rss, code


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--old-python', help='an interpreter with PyYAML 6.0.3 (uv venv + uv pip install PyYAML==6.0.3)')
    ap.add_argument('--levels', type=int, default=20)
    ap.add_argument('--out', default=str(REPO / 'benchmarks' / 'results' / 'hostile.md'))
    args = ap.parse_args()
    rows: list[tuple[str, str, str, str]] = []
    bomb = merge_bomb(args.levels)
    setup = 'import yaml\nfrom mlproj.spec_yaml import _loader_class, parse_yaml\n_loader_class()'
    load_pyyaml = f'yaml.load({bomb!r}, Loader=yaml.CSafeLoader)'
    load_mlproj = f'parse_yaml({bomb!r})'
    pythons = [('installed', sys.executable)] + ([('6.0.3', args.old_python)] if args.old_python else [])
    for label, python in pythons:
        version = subprocess.run([python, '-c', 'import yaml; print(yaml.__version__)'], capture_output=True,
                                 text=True).stdout.strip()
        rows.append((f'merge bomb ({len(bomb)} bytes), yaml.load CSafeLoader', f'PyYAML {version}',
                     *timed_python(python, load_pyyaml, setup)))
        rows.append((f'merge bomb ({len(bomb)} bytes), mlproj parse_yaml', f'PyYAML {version}',
                     *timed_python(python, load_mlproj, setup)))
    with tempfile.TemporaryDirectory(prefix='mlproj-bench-hostile-') as tmp:
        root = Path(tmp)
        (root / 'fifo').mkdir()
        os.mkfifo(root / 'fifo' / 'MLproject')
        (root / 'zero').mkdir()
        (root / 'zero' / 'MLproject').symlink_to('/dev/zero')
        (root / 'big').mkdir()
        with open(root / 'big' / 'MLproject', 'w') as f:
            f.write('name: big\n')
            for block in range(134):
                f.write(''.join(f'k{i}: v{i}xxxxxxxxxxxxxxxxxxxx\n' for i in range(block * 10_000, (block + 1) * 10_000)))
        size = (root / 'big' / 'MLproject').stat().st_size
        for name, env, what in (('fifo', None, 'MLproject is a FIFO'), ('zero', None, 'MLproject -> /dev/zero'),
                                ('big', None, f'MLproject of {size / 1e6:.0f} MB, 1.34 M keys (size bound)'),
                                ('big', {'MLPROJ_MAX_FILE_BYTES': str(64 << 20)},
                                 'same, MLPROJ_MAX_FILE_BYTES=64 MiB (node budget while composing)')):
            wall, rss, code = cli(['lint', name], root, env)
            rows.append((f'mlproj lint: {what}', f'exit {code}', wall, rss))
    make = ("texts = [f'name: p{i}\\nentry_points:\\n  main:\\n    parameters:\\n      a: {{type: float, "
            "default: 0.{i}}}\\n    command: \\\"python t.py {{a}}\\\"\\npython_env: python_env.yaml\\n' "
            "for i in range(1000)]\n")
    setup = make + 'import yaml\nfrom mlproj.spec_yaml import _loader_class, parse_yaml\nL = _loader_class()'
    compose_c = 'for text in texts:\n    ld = yaml.CSafeLoader(text); ld.get_single_node(); ld.dispose()'
    compose_ours = 'for text in texts:\n    ld = L(text); ld.get_single_node(); ld.dispose()'
    parse_ours = 'for text in texts:\n    assert parse_yaml(text)[0]'
    rows.append(('compose 1000 MLproject texts: libyaml composer', 'C', *timed_python(sys.executable, compose_c, setup)))
    rows.append(('compose 1000 MLproject texts: budget composer', 'C events, Python nodes',
                 *timed_python(sys.executable, compose_ours, setup)))
    rows.append(('parse_yaml 1000 MLproject texts (compose + construct)', 'mlproj',
                 *timed_python(sys.executable, parse_ours, setup)))
    load = os.getloadavg()[0]
    lines = ['# Hostile inputs (issue 12)', '',
             f'Machine: {platform.system()} {platform.release()}, {os.cpu_count()} cores, Python '
             f'{platform.python_version()}, load average {load:.2f} at the end (a shared, loaded machine: '
             'wall times are inflated, compare rows of one run only).',
             f'Command: `python benchmarks/bench_hostile.py --levels {args.levels}'
             + (' --old-python <venv with PyYAML 6.0.3>`' if args.old_python else '`'), '',
             'In-process rows exclude interpreter start-up and imports; `mlproj lint` rows are the wall time and max RSS '
             'of the whole process (start-up included).', '',
             '| what | with | time | max RSS (MB) |', '|---|---|---:|---:|']
    lines += [f'| {a} | {b} | {c} | {d} |' for a, b, c, d in rows]
    Path(args.out).write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
