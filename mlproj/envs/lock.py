"""Exact environment locks: what a uv/virtualenv environment really holds, recorded once, reinstalled exactly.

The format is a pip/uv ``requirements.txt`` (the one lock format both installers read; uv 0.13
writes ``pylock.toml`` but pip cannot install it, and the virtualenv manager installs with pip)::

    # mlproj environment lock 1
    # python: 3.11.7 cpython
    # platform: linux x86_64 glibc-2.36
    # hashes: sha256 (uv pip compile --generate-hashes)
    mlproj-tiny-a==1.0 \\
        --hash=sha256:fe98...
    mlproj-tiny-b==1.0 \\
        --hash=sha256:33b3...

* The set is ``uv pip freeze`` of the built environment (every distribution installed in it,
  name and exact version; ``name @ URL`` for direct references).  uv is used for both managers:
  it reads any venv and is a dependency of mlproj's ``run`` extra.
* Hashes: an installed environment does not keep the hash of the archive a package came from, so
  they are asked from the index once, at build time: ``uv pip compile --generate-hashes`` of the
  frozen pins with the same index configuration as the build (uv's cache answers when warm; one
  resolution, ~0.1 s).  They are the sha256 of every file the index offered for that exact version
  (wheels and sdist, as pip-tools writes them).  ``--no-deps`` would make uv omit the hashes, so
  the compile resolves dependencies and the hashes are kept only when it yields exactly the frozen
  set; when it does not, or fails (direct references, editable installs, an index that is gone),
  the lock has no hashes and says why in its ``# hashes:`` line.  A lock is all-hashed or unhashed:
  ``--require-hashes`` accepts nothing in between.
* The header holds no time, path or environment hash, so two environments with the same resolved
  set on the same Python and platform have the same lock and the same ``lock_sha256`` (the sha256
  of the file's bytes, the ``mlproj.env.lock_sha256`` tag).

Reinstalling (``mlproj reproduce``): a new venv on the recorded Python version, then uv
``pip sync`` (exactly the listed set, nothing resolved; ``--require-hashes`` when hashed) or pip
``install --no-deps`` (``--require-hashes`` when hashed).  uv is tried ``--offline`` first, so a
lock whose packages are in uv's cache installs without the network; when that fails it is retried
online.  A pinned version that the index no longer serves is reported as one line naming it.
The lock comes back from a tracking store, so only requirement lines and ``--hash`` options are
passed on: a lock with installer options (``--index-url``, ``-e``, ``-r``) is refused.
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlproj.digest import sha256
from mlproj.errors import EnvError

FORMAT_LINE = '# mlproj environment lock 1'
LOCK_FILE = '.mlproj-lock.txt'          # inside the environment's store entry
ARTIFACT_PATH = 'mlproj/requirements.lock.txt'
_PIN = re.compile(r'^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)')


@dataclass(frozen=True)
class Lock:
    text: str

    @property
    def sha256(self) -> str:
        return sha256(self.text.encode('utf-8')).hexdigest()

    @property
    def header(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in self.text.splitlines():
            if not line.startswith('#'):
                break
            key, sep, value = line[1:].strip().partition(': ')
            if sep:
                out[key] = value
        return out

    @property
    def python(self) -> str | None:
        """The recorded interpreter version (``3.11.7``)."""
        value = self.header.get('python', '')
        return value.split()[0] if value else None

    @property
    def hashed(self) -> bool:
        return '--hash=' in self.text

    def requirements(self) -> list[str]:
        """The requirement lines (continuations joined, hashes dropped, comments removed)."""
        out: list[str] = []
        for line in _logical_lines(self.text):
            words = [w for w in line.split() if not w.startswith('--hash=')]
            if words:
                out.append(' '.join(words))
        return out

    def check(self, where: str = '') -> None:
        """Refuse a lock with installer options (``--index-url``, ``-e``, ``-r``, ...): only
        requirements and their ``--hash`` may come from a tracking store into the installer."""
        for n, line in enumerate(_logical_lines(self.text), 1):
            words = line.split()
            if words[0].startswith('-') or any(w.startswith('-') and not w.startswith('--hash=sha256:')
                                               for w in words[1:]):
                raise EnvError(f'requirement {n} of the environment lock is not a plain requirement with hashes '
                               '(installer options are refused); use --no-lock to rebuild from the spec', where)

    def packages(self) -> dict[str, str]:
        """{normalized name: version} of ``name==version`` lines; ``name @ URL`` maps to the URL."""
        out: dict[str, str] = {}
        for req in self.requirements():
            m = _PIN.match(req)
            if m:
                out[normalize(m.group(1))] = m.group(3)
            elif ' @ ' in req:
                name, _, url = req.partition(' @ ')
                out[normalize(name.split('[')[0])] = url.strip()
        return out


def normalize(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def _logical_lines(text: str) -> list[str]:
    out: list[str] = []
    current = ''
    for raw in text.splitlines():
        line = raw.split(' #', 1)[0] if not raw.lstrip().startswith('#') else ''
        line = line.rstrip()
        if line.endswith('\\'):
            current += line[:-1] + ' '
            continue
        current += line
        if current.strip():
            out.append(current.strip())
        current = ''
    if current.strip():
        out.append(current.strip())
    return out


def parse(data: bytes, where: str = '') -> Lock:
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError:
        raise EnvError('the environment lock is not UTF-8 text', where) from None
    if not text.startswith(FORMAT_LINE):
        raise EnvError('not an mlproj environment lock (its first line is not '
                       f'{FORMAT_LINE!r})', where)
    return Lock(text)


# --------------------------------------------------------------------------------------------
# recording


def record(env_dir: Path, python_version: str, implementation: str, env: dict[str, str]) -> Lock:
    """Freeze the environment at ``env_dir`` into ``env_dir/.mlproj-lock.txt`` and return the lock."""
    from mlproj.envs.uv import uv_bin
    from mlproj.envs.venv import platform_tag, run_step

    uv = uv_bin()
    python = str(env_dir / 'bin' / 'python')
    frozen = run_step([uv, 'pip', 'freeze', '--quiet', '--python', python], 'recording the environment lock',
                      cwd=env_dir, env=env)
    pins = sorted((ln.strip() for ln in frozen.splitlines() if ln.strip() and not ln.startswith('#')),
                  key=lambda s: normalize(re.split(r'[=@\[ ;]', s, maxsplit=1)[0]))
    body, hashes = _with_hashes(uv, python, pins, env_dir, env)
    plat = platform_tag()
    header = [FORMAT_LINE, f'# python: {python_version} {implementation}',
              f"# platform: {plat['platform']} {plat['machine']} {plat['libc'] or '-'}",
              f'# hashes: {hashes}']
    text = '\n'.join(header + body) + '\n'
    from mlproj.cachedir import write_text_atomic

    write_text_atomic(env_dir / LOCK_FILE, text)
    return Lock(text)


def _with_hashes(uv: str, python: str, pins: list[str], cwd: Path, env: dict[str, str]) -> tuple[list[str], str]:
    """(lock body lines, what the ``# hashes:`` line says)."""
    if not pins:
        return [], 'none (empty environment)'
    if not all(_PIN.match(p) for p in pins):
        return pins, 'none (direct references cannot be hashed from an index)'
    with tempfile.TemporaryDirectory(prefix='mlproj-lock-') as tmp:
        req = Path(tmp) / 'frozen.txt'
        req.write_text('\n'.join(pins) + '\n')
        try:
            out = run_compile(uv, python, req, cwd, env)
        except EnvError as e:
            return pins, f'none (uv pip compile --generate-hashes failed: {e.message[:200]})'
    compiled = Lock(FORMAT_LINE + '\n' + out)
    wanted = {normalize(_PIN.match(p).group(1)): _PIN.match(p).group(3) for p in pins}  # type: ignore[union-attr]
    if compiled.packages() != wanted:
        return pins, 'none (the index resolves the frozen set differently)'
    lines = [ln for ln in out.splitlines() if ln.strip() and not ln.lstrip().startswith('#')]
    if sum(1 for ln in lines if not ln.startswith(' ')) != len(pins) or '--hash=' not in out:
        return pins, 'none (the index gave no hashes)'
    return lines, 'sha256 (uv pip compile --generate-hashes)'


def run_compile(uv: str, python: str, req: Path, cwd: Path, env: dict[str, str]) -> str:
    from mlproj.envs.venv import run_step

    return run_step([uv, 'pip', 'compile', '--quiet', '--generate-hashes', '--no-header', '--no-annotate',
                     '--python', python, str(req)], 'hashing the environment lock', cwd=cwd, env=env)


def read(env_dir: Path) -> Lock | None:
    """The lock recorded in a store entry, or None (an entry built before locks; an unreadable file)."""
    path = env_dir / LOCK_FILE
    try:
        return parse(path.read_bytes(), str(path))
    except (OSError, EnvError):
        return None


# --------------------------------------------------------------------------------------------
# reinstalling


def missing_package(lock: Lock, output: str) -> str | None:
    """``name==version`` of a pinned package the installer's error says it cannot find, or None."""
    text = output.lower()
    if not any(w in text for w in ('no version of', 'not found', 'could not find a version', 'no matching distribution',
                                   'unsatisfiable')):
        return None
    for name, version in lock.packages().items():
        for spelled in {name, name.replace('-', '_')}:
            if re.search(rf'(?<![\w.-]){re.escape(spelled)}(\[[^\]]*\])?==\s*{re.escape(version)}(?![\w.])', text):
                return f'{name}=={version}'
    return None


def install(lock: Lock, manager: str, target: Path, cwd: Path, env: dict[str, str], log, where: str) -> None:
    """Install exactly the locked set into the fresh venv ``target`` (uv: ``pip sync``; pip: ``--no-deps``)."""
    import subprocess

    from mlproj.envs.venv import summarize

    lock.check(where)
    python = str(target / 'bin' / 'python')
    hashes = ['--require-hashes'] if lock.hashed else []
    with tempfile.TemporaryDirectory(prefix='mlproj-lock-') as tmp:
        req = Path(tmp) / 'requirements.lock.txt'
        req.write_text(lock.text)
        if manager == 'uv':
            from mlproj.envs.uv import uv_bin

            base = [uv_bin(), 'pip', 'sync', '--python', python, '--compile-bytecode', *hashes, str(req)]
            attempts = [base[:3] + ['--offline'] + base[3:], base]
        else:
            attempts = [[python, '-m', 'pip', 'install', '--quiet', '--compile', '--no-deps', *hashes, '-r', str(req)]]
        output = ''
        for argv in attempts:
            try:
                proc = subprocess.run(argv, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, errors='replace')
            except OSError as e:
                raise EnvError(f'installing the environment lock: cannot run {argv[0]!r}: {e.strerror}',
                               where) from None
            if proc.returncode == 0:
                return
            output = proc.stdout or ''
    missing = missing_package(lock, output)
    if missing:
        raise EnvError(f'{missing} from the environment lock is no longer available from the package index; '
                       'use --no-lock to rebuild from the project\'s environment spec', where)
    if log is not None and output.strip():
        log.write(output if output.endswith('\n') else output + '\n')
        log.flush()
    raise EnvError(f'installing the environment lock failed: {summarize(output) or "see the output above"}', where)
