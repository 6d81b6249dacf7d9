"""Benchmark `mlproj lint`: 1000 MLproject files, and the CLI start-up on one file.

Side by side in one run: `mlproj lint` (CLI and in-process), check-jsonschema with mlproj's schema
on the same files, and PyYAML's pure-Python `safe_load` of the same files (what MLflow does).
Targets (issue 6): 1000 files < 1 s; one file <= 150 ms wall.

    python benchmarks/bench_lint.py [--files 1000] [--repeat 5] [--out benchmarks/results/lint.md]
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = [
    'name: p{i}\nentry_points:\n  main:\n    parameters:\n      alpha: {{type: float, default: 0.{i}}}\n'
    '      epochs: {{type: int, default: {i}}}\n      data: {{type: path, default: data.csv}}\n'
    '    command: "python train.py --alpha {{alpha}} --epochs {{epochs}} --data {{data}}"\n'
    '  evaluate:\n    parameters:\n      model_uri: uri\n    command: "python eval.py {{model_uri}}"\n'
    'python_env: python_env.yaml\n',
    'name: d{i}\ndocker_env:\n  image: python:3.11-slim\n  volumes: ["/data:/data"]\n'
    '  environment: [HOME, [SEED, "{i}"]]\nentry_points:\n  main:\n    command: "python -c pass"\n',
    'entry_point:\n  main:\n    parameters: {{a: {{type: integr, default: x}}}}\n    command: "echo {{b}}"\n'
    'conda_env: missing.yaml\n',
]


def make_tree(root: Path, n: int) -> None:
    for i in range(n):
        d = root / f'p{i:04d}'
        d.mkdir(parents=True)
        (d / 'MLproject').write_text(TEMPLATES[i % len(TEMPLATES)].format(i=i))
        if i % len(TEMPLATES) == 0:
            (d / 'python_env.yaml').write_text('python: "3.11"\ndependencies: [numpy, pandas]\n')
            (d / 'train.py').write_text('')
            (d / 'eval.py').write_text('')


def wall(argv: list[str], repeat: int, cwd: Path, ok_codes=(0, 1)) -> tuple[float, float, float]:
    """(median wall, best wall, median CPU user+sys) of a fresh process; CPU time is less sensitive to
    other load on the machine than wall time."""
    times, cpu = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        assert proc.returncode in ok_codes, (argv, proc.returncode, proc.stderr[-500:])
    return statistics.median(times), min(times), statistics.median(cpu)


def in_process(root: Path, repeat: int) -> tuple[float, float, float, int]:
    from mlproj.lint import lint_paths, load_config

    times, cpu = [], []
    issues = 0
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        result = lint_paths([str(root)], load_config(None))
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        issues = len(result.issues)
    return statistics.median(times), min(times), statistics.median(cpu), issues


def pure_yaml(root: Path, repeat: int) -> tuple[float, float, float]:
    import yaml

    files = sorted(root.glob('*/MLproject'))
    times, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        for f in files:
            yaml.safe_load(f.read_text())
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(times), min(times), statistics.median(cpu)


def machine() -> str:
    cpu = platform.processor() or ''
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, 'getloadavg') else ('?',)
    return (f'{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), Python '
            f'{platform.python_version()}, load average {load[0]:.2f} at start')


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--files', type=int, default=1000)
    ap.add_argument('--repeat', type=int, default=5)
    ap.add_argument('--out', default=str(REPO / 'benchmarks' / 'results' / 'lint.md'))
    args = ap.parse_args()
    py = sys.executable
    rows: list[tuple[str, float, float, float, str]] = []
    env_line = machine()
    with tempfile.TemporaryDirectory(prefix='mlproj-bench-lint-') as tmp:
        root = Path(tmp) / 'projects'
        make_tree(root, args.files)
        one = root / 'p0000' / 'MLproject'
        cwd = Path(tmp)
        rows.append(('python -c pass (interpreter start-up)', *wall([py, '-c', 'pass'], 15, cwd), ''))
        rows.append(('mlproj --help', *wall([py, '-m', 'mlproj', '--help'], 15, cwd, (0,)), ''))
        rows.append(('mlproj lint (1 file, CLI wall)', *wall([py, '-m', 'mlproj', 'lint', str(one)], 15, cwd),
                     'target <= 150 ms'))
        rows.append((f'mlproj lint ({args.files} files, CLI wall)',
                     *wall([py, '-m', 'mlproj', 'lint', str(root)], args.repeat, cwd), 'target < 1 s'))
        med, best, cpu, issues = in_process(root, args.repeat)
        rows.append((f'mlproj lint ({args.files} files, in-process lint_paths)', med, best, cpu,
                     f'{issues} findings'))
        rows.append((f'yaml.safe_load, pure Python ({args.files} files; what MLflow does, no checks)',
                     *pure_yaml(root, args.repeat), ''))
        cj = shutil.which('check-jsonschema') or str(Path(py).with_name('check-jsonschema'))
        if Path(cj).exists():
            files = [str(p) for p in sorted(root.glob('*/MLproject'))]
            schema = str(REPO / 'mlproj' / 'schemas' / 'mlproject.schema.json')
            rows.append((f'check-jsonschema with mlproj\'s schema ({args.files} files)',
                         *wall([cj, '--schemafile', schema, '--default-filetype', 'yaml', *files],
                               max(1, args.repeat // 2), cwd), 'schema only'))
    lines = [
        '# `mlproj lint` benchmark',
        '',
        f'Machine: {env_line}.',
        f'Command: `python benchmarks/bench_lint.py --files {args.files} --repeat {args.repeat}` '
        '(median and best of the repeats; CLI rows are wall time of a fresh process).',
        '',
        f'Load average at the end: {os.getloadavg()[0]:.2f} (other work on the machine inflates wall time; '
        'CPU time is user+sys of the process).',
        '',
        '| what | wall median | wall best | CPU median | note |',
        '|---|---:|---:|---:|---|',
    ]
    for name, med, best, cpu, note in rows:
        lines.append(f'| {name} | {med * 1000:.0f} ms | {best * 1000:.0f} ms | {cpu * 1000:.0f} ms | {note} |')
    text = '\n'.join(lines) + '\n'
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
