"""A project's processes cannot read mlproj's own environment through /proc (mlproj.console).

The run is started as an unprivileged user (``setpriv`` to nobody: root reads every process's
/proc files whatever their owner), with a secret in mlproj's environment that the child-environment
policy withholds.  The project's command looks up its ancestors: the supervisor (its parent) has
an empty environment, and mlproj (its grandparent) refuses to be read.  The interpreter is the
system's Python of the same version with this checkout and its venv on PYTHONPATH: the venv's
own interpreter lives under root's home, which nobody may enter."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # root, another user, mlproj as a subprocess

PROBE = textwrap.dedent('''\
    import json, os, sys
    def parent(pid):
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    sup = os.getppid()
    launcher = parent(sup)
    out = {"launcher_cmdline": open(f"/proc/{launcher}/cmdline", "rb").read().decode(errors="replace"),
           "supervisor_environ": open(f"/proc/{sup}/environ", "rb").read().decode(errors="replace")}
    try:
        out["launcher_environ"] = open(f"/proc/{launcher}/environ", "rb").read().decode(errors="replace")
    except PermissionError:
        out["launcher_environ"] = "PermissionError"
    with open(sys.argv[1], "w") as f:
        json.dump(out, f)
''')


@pytest.fixture
def shared_dir():
    """A directory an unprivileged user can write (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix='mlproj-dumpable-'))
    d.chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_nobody(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', *argv],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def unprivileged_python() -> str | None:
    """A Python of this version that an unprivileged user may run (the venv's lives in /root)."""
    for candidate in (f'/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}', '/usr/bin/python3'):
        if os.access(candidate, os.X_OK) and os.stat(candidate).st_mode & 0o001:
            out = subprocess.run([candidate, '-c', 'import sys; print(sys.version_info[:2])'], capture_output=True,
                                 text=True)
            if out.stdout.strip() == str(tuple(sys.version_info[:2])):
                return candidate
    return None


PYTHON = unprivileged_python()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which('setpriv') is None or PYTHON is None,
                    reason='needs root, setpriv and a system Python of this version to run mlproj as another user')
def test_the_project_cannot_read_mlprojs_environment(shared_dir):
    import json
    import sysconfig

    import mlproj

    project = shared_dir / 'p'
    project.mkdir()
    (project / 'MLproject').write_text('name: p\nentry_points:\n  main:\n    command: "python3 probe.py ../out.json"\n')
    (project / 'probe.py').write_text(PROBE)
    for p in (project, project / 'MLproject', project / 'probe.py'):
        p.chmod(0o777 if p.is_dir() else 0o666)
    secret = 'ghp_' + 'S3cr3tTokenValue0123456789abcdefABCD'
    checkout = Path(mlproj.__file__).resolve().parent.parent
    env = {'PATH': '/usr/bin:/bin', 'HOME': str(shared_dir), 'MLPROJ_CACHE_DIR': str(shared_dir / 'cache'),
           'PYTHONPATH': f'{checkout}:{sysconfig.get_paths()["purelib"]}', 'GITHUB_TOKEN': secret,
           'MLFLOW_TRACKING_URI': f'sqlite:///{shared_dir}/mlflow.db'}
    r = as_nobody([str(PYTHON), '-m', 'mlproj', 'run', str(project), '--env-manager', 'local'], env, shared_dir)
    assert r.returncode == 0, r.stderr
    seen = json.loads((shared_dir / 'out.json').read_text())
    assert 'mlproj' in seen['launcher_cmdline'] and 'run' in seen['launcher_cmdline']  # the right process
    assert seen['supervisor_environ'] == ''            # started with an empty environment
    assert seen['launcher_environ'] == 'PermissionError'
    assert secret not in json.dumps(seen)
