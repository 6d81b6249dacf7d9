"""The project-file reader (mlproj.safefile) and what run / show / lint / env build make of it.

Real files, real symlinks, real FIFOs, /dev/zero, a real `git daemon` for the remote case.  A
"secret" file outside the project carries a unique marker: it must never appear in any output.
Time is bounded by subprocess timeouts (a hang fails the test); memory is measured with wait4.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mlproj import safefile
from tests.helpers import mlproj_bin, write_project

MARKER = f'SECRET-{uuid.uuid4().hex}'
MAIN = 'name: p\nentry_points:\n  main:\n    command: "echo hi"\n'


@pytest.fixture
def secret(tmp_path) -> Path:
    """A file outside every project, shaped like /etc/shadow (each line a YAML-ish key)."""
    path = tmp_path / 'outside' / 'shadow'
    path.parent.mkdir()
    path.write_text(f'root:$6${MARKER}:19000:0:99999:7:::\n{MARKER}: 1\nentry_points: {{{MARKER}: x}}\n')
    return path


def run(args: list[str], *, cwd: Path, env: dict | None = None, timeout: float = 60) -> tuple[int, str, int]:
    """(exit code, stdout + stderr, 0) of one mlproj process (rss_of measures memory)."""
    full = dict(os.environ, **(env or {}))
    proc = subprocess.Popen([mlproj_bin(), *args], cwd=cwd, env=full, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f'mlproj {" ".join(args)} did not finish within {timeout}s') from None
    return proc.returncode, out.decode('utf-8', 'replace'), 0


def rss_of(args: list[str], *, cwd: Path, env: dict | None = None, timeout: float = 60) -> tuple[int, str, int]:
    """Like run(), with the max RSS (MB) of the mlproj process measured by wait4."""
    wrapper = ('import os, subprocess, sys\n'
               'p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)\n'
               'out = p.stdout.read()\n'
               '_, status, ru = os.wait4(p.pid, 0)\n'
               'sys.stdout.buffer.write(out)\n'
               'sys.stdout.write("\\nRSS_MB=%d CODE=%d\\n" % (ru.ru_maxrss // 1024, os.waitstatus_to_exitcode(status)))\n')
    full = dict(os.environ, **(env or {}))
    proc = subprocess.run([sys.executable, '-c', wrapper, mlproj_bin(), *args], cwd=cwd, env=full,
                          capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    text = proc.stdout.decode('utf-8', 'replace')
    body, _, tail = text.rpartition('\nRSS_MB=')
    rss, _, code = tail.strip().partition(' CODE=')
    return int(code), body, int(rss)


def assert_clean(code: int, out: str, expected: int) -> None:
    assert code == expected, out
    assert MARKER not in out
    assert 'Traceback' not in out and 'internal error' not in out, out


# --------------------------------------------------------------------------------------------
# the reader itself


def test_symlink_out_of_the_root_is_refused_without_quoting(tmp_path, secret):
    root = tmp_path / 'repo'
    (root / 'sub').mkdir(parents=True)
    (root / 'sub' / 'MLproject').symlink_to(secret)
    with pytest.raises(safefile.Refused) as e:
        safefile.read_bytes(root / 'sub' / 'MLproject', root, what='MLproject')
    assert 'outside the repository root' in str(e.value) and MARKER not in str(e.value)
    assert str(secret) not in str(e.value)  # not even where the link points


def test_symlink_in_a_parent_component_is_refused(tmp_path, secret):
    root = tmp_path / 'repo'
    root.mkdir()
    (root / 'dir').symlink_to(secret.parent, target_is_directory=True)
    with pytest.raises(safefile.Refused, match='outside the repository root'):
        safefile.read_bytes(root / 'dir' / 'shadow', root)
    with pytest.raises(safefile.Refused, match='outside the repository root'):
        safefile.read_bytes(root / '..' / 'outside' / 'shadow', root)


def test_links_and_parent_files_inside_the_root_are_read(tmp_path):
    root = tmp_path / 'repo'
    (root / 'proj').mkdir(parents=True)
    (root / 'python_env.yaml').write_text('python: "3.11"\n')
    (root / 'proj' / 'env.yaml').symlink_to('../python_env.yaml')
    assert safefile.read_bytes(root / 'proj' / '..' / 'python_env.yaml', root) == b'python: "3.11"\n'
    assert safefile.read_bytes(root / 'proj' / 'env.yaml', root) == b'python: "3.11"\n'
    with pytest.raises(safefile.Refused, match='outside'):  # the project folder alone is not the root
        safefile.read_bytes(root / 'proj' / 'env.yaml', root / 'proj')


def test_non_regular_files_are_refused_without_blocking(tmp_path):
    root = tmp_path
    os.mkfifo(root / 'fifo')
    (root / 'zero').symlink_to('/dev/zero')
    (root / 'dir').mkdir()
    for name, kind in (('fifo', 'FIFO'), ('dir', 'directory')):
        with pytest.raises(safefile.Refused, match=kind):
            safefile.read_bytes(root / name, root)
    with pytest.raises(safefile.Refused, match='outside'):
        safefile.read_bytes(root / 'zero', root)
    with pytest.raises(safefile.Refused, match='character device'):
        safefile.read_bytes('/dev/zero', '/')
    assert not safefile.is_regular(root / 'fifo', root)


def test_size_bound_and_its_variable(tmp_path, monkeypatch):
    big = tmp_path / 'big'
    big.write_bytes(b'a' * (safefile.DEFAULT_MAX_BYTES + 1))
    with pytest.raises(safefile.Refused, match=r'over the limit of 1048576 \(MLPROJ_MAX_FILE_BYTES\)'):
        safefile.read_bytes(big, tmp_path)
    monkeypatch.setenv('MLPROJ_MAX_FILE_BYTES', str(2 << 20))
    assert len(safefile.read_bytes(big, tmp_path)) == safefile.DEFAULT_MAX_BYTES + 1
    monkeypatch.setenv('MLPROJ_MAX_FILE_BYTES', 'lots')  # unusable: the default applies
    assert safefile.max_bytes() == safefile.DEFAULT_MAX_BYTES


def test_find_root_is_the_repository(tmp_path):
    (tmp_path / 'repo' / '.git').mkdir(parents=True)
    (tmp_path / 'repo' / 'a' / 'b').mkdir(parents=True)
    (tmp_path / 'plain').mkdir()
    assert safefile.find_root(tmp_path / 'repo' / 'a' / 'b') == (tmp_path / 'repo').resolve()
    assert safefile.find_root(tmp_path / 'plain') == (tmp_path / 'plain').resolve()


# --------------------------------------------------------------------------------------------
# MLproject symlinked out of the project: lint, show, run --dry-run, run


def _symlinked_project(directory: Path, secret: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / 'MLproject').symlink_to(secret)
    return directory


@pytest.mark.slow
def test_local_mlproject_symlink_never_leaks(tmp_path, secret, sqlite_store):
    proj = _symlinked_project(tmp_path / 'proj', secret)
    env = {'MLFLOW_TRACKING_URI': sqlite_store}
    code, out, _ = run(['lint', str(proj)], cwd=tmp_path)
    assert_clean(code, out, 1)
    assert 'MLP001' in out and 'outside the repository root' in out
    for args in (['show', str(proj)], ['run', '--dry-run', str(proj)], ['run', str(proj)]):
        code, out, _ = run(args, cwd=tmp_path, env=env)
        assert_clean(code, out, 65)
        assert out.startswith('mlproj: error: MLproject is refused: it resolves outside the repository root')
        assert out.count('\n') == 1


@pytest.mark.slow
def test_remote_mlproject_symlink_never_leaks(tmp_path, secret, sqlite_store):
    from tests.helpers.git import git
    from tests.helpers.source import start_daemon, stop

    home = tmp_path / 'home'
    home.mkdir()
    work, srv = tmp_path / 'work', tmp_path / 'srv'
    work.mkdir()
    srv.mkdir()
    git('init', '-q', cwd=work, home=home)
    (work / 'MLproject').symlink_to(secret)                    # an absolute link, as a PR can commit
    (work / 'sub').mkdir()
    (work / 'sub' / 'MLproject').write_text('name: s\npython_env: python_env.yaml\nentry_points:\n'
                                            '  main: {command: "true"}\n')
    (work / 'sub' / 'python_env.yaml').symlink_to(secret)
    git('add', '-A', cwd=work, home=home)
    git('commit', '-qm', 'evil', cwd=work, home=home)
    git('clone', '-q', '--bare', str(work), str(srv / 'evil.git'), home=home)
    proc, port = start_daemon(srv, home, tmp_path / 'daemon.log')
    try:
        url = f'git://127.0.0.1:{port}/evil.git'
        env = {'MLFLOW_TRACKING_URI': sqlite_store, 'HOME': str(home)}
        for args in (['show', url], ['run', '--dry-run', url], ['run', url]):
            code, out, _ = run(args, cwd=tmp_path, env=env)
            assert_clean(code, out, 65)
            assert 'MLproject is refused' in out
        for args in (['run', '--dry-run', url + '#sub'], ['run', '--env-manager', 'uv', url + '#sub']):
            code, out, _ = run(args, cwd=tmp_path, env=env)
            # a declared env file is refused by the MLproject's path policy (MLP027) before any read
            assert_clean(code, out, 65)
            assert 'MLP027' in out and 'points outside the repository (or checkout) root' in out
        # the Action lints a clone of the pull request
        clone = tmp_path / 'clone'
        git('clone', '-q', url, str(clone), home=home)
        code, out, _ = run(['lint', '--format', 'github', str(clone)], cwd=tmp_path, env=env)
        assert_clean(code, out, 1)
        assert out.count('outside the repository') >= 2
    finally:
        stop(proc)


# --------------------------------------------------------------------------------------------
# env files symlinked out of the project


@pytest.mark.slow
@pytest.mark.parametrize('key,name', [('python_env', 'python_env.yaml'), ('conda_env', 'conda.yaml')])
def test_env_file_symlink_never_leaks(tmp_path, secret, key, name):
    proj = write_project(tmp_path / 'proj', f'name: p\n{key}: {name}\nentry_points:\n  main: {{command: "true"}}\n')
    (proj / name).symlink_to(secret)
    code, out, _ = run(['lint', str(proj)], cwd=tmp_path)
    assert_clean(code, out, 1)
    assert 'MLP027' in out and 'points outside the repository (or checkout) root' in out
    code, out, _ = run(['run', '--dry-run', '--env-manager', 'uv', str(proj)], cwd=tmp_path)
    assert_clean(code, out, 65)
    code, out, _ = run(['env', 'build', str(proj)], cwd=tmp_path)
    assert_clean(code, out, 65)


@pytest.mark.slow
def test_conventional_env_file_and_requirement_files_never_leak(tmp_path, secret):
    proj = write_project(tmp_path / 'proj', MAIN, {
        'python_env.yaml': 'dependencies: ["-r requirements.txt", "-r /{}"]\n'.format(str(secret).lstrip('/'))})
    (proj / 'requirements.txt').symlink_to(secret)
    code, out, _ = run(['lint', str(proj)], cwd=tmp_path)
    assert_clean(code, out, 1)
    assert out.count("requirements file") == 2 and 'outside the repository root' in out
    code, out, _ = run(['run', '--dry-run', str(proj)], cwd=tmp_path)
    assert_clean(code, out, 68)


@pytest.mark.slow
def test_uv_lock_symlink_never_reaches_uv(tmp_path, secret):
    version = '.'.join(map(str, sys.version_info[:2]))
    proj = write_project(tmp_path / 'proj', MAIN, {
        'python_env.yaml': f'python: "{version}"\n',
        'pyproject.toml': '[project]\nname = "p"\nversion = "0"\n'})
    (proj / 'uv.lock').symlink_to(secret)
    code, out, _ = run(['env', 'build', str(proj)], cwd=tmp_path, timeout=120)
    assert_clean(code, out, 68)
    assert 'uv.lock is refused: it resolves outside the repository root' in out


@pytest.mark.slow
def test_a_parent_env_file_inside_the_repository_is_read(tmp_path):
    repo = tmp_path / 'repo'
    (repo / '.git').mkdir(parents=True)
    (repo / 'python_env.yaml').write_text('python: 3.10\n')  # a float: MLP017 proves it was read
    proj = write_project(repo / 'proj', MAIN)
    (proj / 'python_env.yaml').symlink_to('../python_env.yaml')
    code, out, _ = run(['lint', str(proj)], cwd=tmp_path)
    assert code == 1 and 'YAML reads 3.10 as the number 3.1' in out, out


# --------------------------------------------------------------------------------------------
# /dev/zero, a FIFO, a 50 MB file, a merge bomb


def _fifo_project(directory: Path) -> None:
    directory.mkdir()
    os.mkfifo(directory / 'MLproject')


def _zero_project(directory: Path) -> None:
    directory.mkdir()
    (directory / 'MLproject').symlink_to('/dev/zero')


def _big_project(directory: Path) -> None:
    directory.mkdir()
    with open(directory / 'MLproject', 'w') as f:  # ~50 MB, 1.4 M small keys
        f.write('name: big\n')
        for block in range(140):
            f.write(''.join(f'k{i}: v{i}-xxxxxxxxxxxxxxxxxxxxxxx\n' for i in range(block * 10_000, (block + 1) * 10_000)))


@pytest.mark.slow
@pytest.mark.parametrize('make,what', [(_fifo_project, 'FIFO'), (_zero_project, 'outside the repository root'),
                                       (_big_project, 'over the limit of 1048576')])
def test_hostile_mlproject_is_refused_with_bounded_memory(tmp_path, make, what):
    make(tmp_path / 'p')
    for args, expected in ((['lint', 'p'], 1), (['run', '--dry-run', 'p'], 65)):
        code, out, rss = rss_of(args, cwd=tmp_path, timeout=60)
        assert code == expected and what in out, out
        assert rss < 200, f'{rss} MB'


@pytest.mark.slow
def test_the_node_budget_applies_while_composing(tmp_path):
    _big_project(tmp_path / 'p')
    code, out, rss = rss_of(['lint', 'p'], cwd=tmp_path, env={'MLPROJ_MAX_FILE_BYTES': str(64 << 20)}, timeout=120)
    assert code == 1 and 'the document has more than 100000 nodes' in out, out
    # nodes stop at the budget instead of 1.4 M keys (the text itself is held as str and by libyaml)
    assert rss < 200, f'{rss} MB'


def merge_bomb(levels: int = 24) -> str:
    lines = ['a0: &a0 {k: 0}']
    for i in range(1, levels):
        lines.append(f'a{i}: &a{i} {{<<: [*a{i - 1}, *a{i - 1}], k{i}: {i}}}')
    return '\n'.join(lines) + '\n'


def test_merge_bomb_is_flattened_by_mlproj_not_pyyaml(monkeypatch):
    """PyYAML's flatten_mapping (exponential before 6.0.4) is never called: mlproj flattens << under its budget."""
    import yaml.constructor

    from mlproj.spec import parse_yaml

    def refuse(self, node):
        raise AssertionError('PyYAML flatten_mapping called')

    monkeypatch.setattr(yaml.constructor.SafeConstructor, 'flatten_mapping', refuse)
    text = merge_bomb()
    assert len(text) < 1000
    data, doc = parse_yaml(text)
    assert doc.findings == []
    assert data['a23'] == {'k': 0, **{f'k{i}': i for i in range(1, 24)}}


def test_merge_semantics_and_budget():
    from mlproj.spec import parse_yaml

    data, doc = parse_yaml('a: &a {x: 1, y: 1}\nb: &b {x: 2, z: 2}\nc:\n  <<: [*a, *b]\n  y: 3\n')
    assert data['c'] == {'x': 1, 'y': 3, 'z': 2} and doc.findings == []  # earlier merge wins, own key wins
    wide = 'a: &a {' + ', '.join(f'k{i}: {i}' for i in range(2000)) + '}\n' + ''.join(
        f'b{j}: {{<<: [*a, *a, *a, *a, *a]}}\n' for j in range(20))
    data, doc = parse_yaml(wide)
    assert data is None and 'more than 100000 nodes' in doc.findings[0].message
    data, doc = parse_yaml('a: &a\n  <<: *a\n')
    assert data is None and 'recursive' in doc.findings[0].message


@pytest.mark.slow
def test_merge_bomb_lint_cli(tmp_path):
    write_project(tmp_path / 'p', merge_bomb(28) + MAIN.replace('name: p\n', ''))
    code, out, rss = rss_of(['lint', 'p'], cwd=tmp_path, timeout=60)
    assert code == 0 and rss < 200, (out, rss)


@pytest.mark.slow
def test_lint_config_symlink_never_leaks(tmp_path, secret):
    repo = write_project(tmp_path / 'repo', MAIN)
    (repo / '.git').mkdir()
    (repo / 'pyproject.toml').symlink_to(secret)
    code, out, _ = run(['lint', '.'], cwd=repo)
    assert_clean(code, out, 2)
    assert 'pyproject.toml is refused: it resolves outside the repository root' in out
