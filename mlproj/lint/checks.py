"""Lint-only rules (MLP020-MLP022, MLP024, MLP025, MLP031): useful warnings that `mlproj run` does not act on.

MLP024 / MLP025 look at every ``docker_env`` (the project's and entry points' own) with the eyes of
a reviewer of an untrusted pull request: a volume that hands the container the host (``/``, the
Docker socket, a home directory) and an ``environment`` entry that copies a secret from the host by
name.  MLP031 marks an entry point's own environment key as mlproj-only (``mlflow run`` ignores it).
"""
from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

from mlproj.findings import Finding
from mlproj.spec_model import ENV_KEYS, DockerSpec, EntryPoint, Project, iter_template
from mlproj.spec_yaml import locate_in_value

_INTERPRETERS = re.compile(r'^(python(\d+(\.\d+)?)?|bash|sh|zsh|dash|Rscript)$')
_SCRIPT_EXT = ('.py', '.sh', '.R')
_SEPARATORS = {'&&', '||', ';', '|', '&', ';;', '(', ')'}


def lint_only(project: Project, doc, text: str, label: str) -> list[Finding]:
    findings: list[Finding] = []
    for ep in project.entry_points.values():
        if ep.command is None or ep.script:
            continue
        findings += _quoted_placeholders(ep, doc, text, label)
        findings += _missing_scripts(ep, project.directory, doc, text, label)
    findings += _entry_point_envs(project, doc, label)
    for ep_name, env in project.environments():
        prefix = ('entry_points', ep_name) if ep_name is not None else ()
        what = '.'.join((*prefix, 'docker_env'))
        if env.kind == 'docker' and project.data.get('name') in (None, ''):
            line, col = doc.key_pos.get(prefix + ('docker_env',), (0, 0))
            findings.append(Finding('MLP022', f'{what} is set but the project has no name; MLflow needs '
                                    '`name:` to tag the image it builds', line, col, label))
        if env.kind == 'docker' and env.docker is not None:
            findings += _host_mounts(env.docker, prefix, doc, label)
            findings += _secret_environment(env.docker, prefix, doc, label)
    return findings


def _entry_point_envs(project: Project, doc, label: str) -> list[Finding]:
    """MLP031 on each env key an entry point sets (as the loader reads it: null and '' are absent)."""
    raw = project.data.get('entry_points')
    out = []
    for ep_name, ep in (raw.items() if isinstance(raw, dict) else ()):
        if ep_name not in project.entry_points or not isinstance(ep, dict):
            continue
        for key in ENV_KEYS:
            if ep.get(key):
                line, col = doc.key_pos.get(('entry_points', ep_name, key), (0, 0))
                out.append(Finding('MLP031', f'{key} of entry point {ep_name!r} is mlproj-only: mlflow run ignores '
                                   "it and uses the project's environment", line, col, label))
    return out


_DOCKER_SOCKETS = ('/var/run/docker.sock', '/run/docker.sock', '/var/run/podman/podman.sock',
                   '/run/podman/podman.sock')
_HOME_FORMS = ('~', '$HOME', '${HOME}')


def _dangerous_mount(host: str) -> str | None:
    """What mounting ``host`` hands the container, or None."""
    import posixpath

    if host in _HOME_FORMS or host.startswith(('~/', '$HOME/', '${HOME}/')) and \
            posixpath.normpath(host.split('/', 1)[1] or '.') == '.':
        return 'a home directory'
    if not host.startswith('/'):
        return None  # a named volume
    path = posixpath.normpath('/' + host.lstrip('/'))
    if path == '/':
        return 'the host root filesystem'
    if path in _DOCKER_SOCKETS or path.endswith('/docker.sock'):
        return 'the Docker socket (root on the host)'
    parts = path.strip('/').split('/')
    if path == '/root' or (len(parts) == 2 and parts[0] in ('home', 'Users')) or path in ('/home', '/Users'):
        return 'a home directory'
    return None


def _host_mounts(docker: DockerSpec, prefix: tuple, doc, label: str) -> list[Finding]:
    out = []
    path = prefix + ('docker_env',)
    for i, volume in enumerate(docker.volumes):
        host = volume.split(':', 1)[0] if ':' in volume else ''
        what = _dangerous_mount(host)
        if what:
            line, col = doc.value_pos.get(path + ('volumes', i)) or doc.key_pos.get(path + ('volumes',), (0, 0))
            out.append(Finding('MLP024', f'{".".join(path)}.volumes entry {i + 1} mounts {what} ({host!r}) into the '
                               'container: the project can then read or take over this machine', line, col, label))
    return out


# names always treated as secrets; plus any name ending like one (below)
_SECRET_NAMES = frozenset({
    'GITHUB_TOKEN', 'GH_TOKEN', 'GH_ENTERPRISE_TOKEN', 'GITHUB_ENTERPRISE_TOKEN', 'ACTIONS_RUNTIME_TOKEN',
    'ACTIONS_ID_TOKEN_REQUEST_TOKEN', 'ACTIONS_ID_TOKEN_REQUEST_URL', 'AWS_SECRET_ACCESS_KEY',
    'AWS_SESSION_TOKEN', 'DATABRICKS_TOKEN', 'DATABRICKS_CLIENT_SECRET', 'DATABRICKS_PASSWORD',
    'MLPROJ_GIT_TOKEN', 'MLPROJ_SSH_KEY_PASSPHRASE', 'AZURE_CLIENT_SECRET', 'AZURE_STORAGE_KEY',
    'AZURE_STORAGE_CONNECTION_STRING', 'GOOGLE_APPLICATION_CREDENTIALS', 'NPM_TOKEN', 'PYPI_TOKEN',
    'SSH_AUTH_SOCK', 'VAULT_TOKEN', 'HF_TOKEN',
})
_SECRET_SUFFIX = re.compile(r'(_|^)(TOKEN|SECRET|SECRET_KEY|PASSWORD|PASSWD|PASS|API_KEY|APIKEY|PRIVATE_KEY|'
                            r'ACCESS_KEY|CREDENTIALS?|PASSPHRASE)$', re.IGNORECASE)
# what mlproj itself passes to the container for tracking (envs/docker.py PASSED_VARS)
_EXEMPT = frozenset({'MLFLOW_TRACKING_TOKEN', 'MLFLOW_TRACKING_USERNAME', 'MLFLOW_TRACKING_PASSWORD'})


def _is_secret_name(name: str) -> bool:
    upper = name.upper()
    if upper in _EXEMPT:
        return False
    return upper in _SECRET_NAMES or bool(_SECRET_SUFFIX.search(upper))


def _secret_environment(docker: DockerSpec, prefix: tuple, doc, label: str) -> list[Finding]:
    out = []
    path = prefix + ('docker_env',)
    for i, item in enumerate(docker.environment):
        if isinstance(item, str) and _is_secret_name(item):
            line, col = doc.value_pos.get(path + ('environment', i)) or doc.key_pos.get(
                path + ('environment',), (0, 0))
            out.append(Finding('MLP025', f'{".".join(path)}.environment copies {item} from this machine into the '
                               'container: every program in the image (and any pull request changing it) sees '
                               'the secret; pass it only where needed, or give a [name, value] pair', line, col,
                               label))
    return out


def _where(doc, text: str, ep: EntryPoint, needle: str) -> tuple[int, int]:
    path = ('entry_points', ep.name, 'command')
    return locate_in_value(doc, text, path, needle) or doc.value_pos.get(path) or ep.pos


def _quoted_placeholders(ep: EntryPoint, doc, text: str, label: str) -> Iterator[Finding]:
    state = ''  # '' outside quotes, "'" or '"' inside
    escaped = False
    for kind, value in iter_template(ep.command or ''):
        if kind == 'param':
            if state:
                where = _where(doc, text, ep, '{' + value + '}')
                yield Finding('MLP020', f'{{{value}}} is inside {state}quotes{state} in the command of entry point '
                              f'{ep.name!r}; values are already shell-quoted, so drop the quotes', *where, label)
            escaped = False
            continue
        for c in value:
            if escaped:
                escaped = False
            elif c == '\\' and state != "'":
                escaped = True
            elif state == '' and c in ('"', "'"):
                state = c
            elif c == state:
                state = ''


def _missing_scripts(ep: EntryPoint, directory: Path, doc, text: str, label: str) -> Iterator[Finding]:
    literal = ''.join(v if k == 'text' else 'PARAM{}' for k, v in iter_template(ep.command or ''))
    lexer = shlex.shlex(literal, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: the shell will say so
        return
    if 'cd' in tokens or 'pushd' in tokens:
        return  # the working directory changes: relative paths cannot be checked
    segment: list[str] = []
    for token in tokens + [';']:
        if token in _SEPARATORS:
            script = _script_of(segment)
            if script and not (directory / script).exists():
                where = _where(doc, text, ep, script)
                yield Finding('MLP021', f'the command of entry point {ep.name!r} runs {script}, which does not '
                              'exist in the project', *where, label)
            segment = []
        else:
            segment.append(token)


def _script_of(segment: list[str]) -> str | None:
    words = [w for w in segment]
    while words and re.match(r'^[A-Za-z_][A-Za-z0-9_]*=', words[0]):  # VAR=value prefixes
        words.pop(0)
    if words and words[0] in ('exec', 'time', 'nohup'):
        words.pop(0)
    if not words or not _INTERPRETERS.match(os.path.basename(words[0])):
        return None
    for word in words[1:]:
        if word in ('-m', '-c', '-e', '--'):
            return None
        if word.startswith('-'):
            continue
        if word.endswith(_SCRIPT_EXT) and 'PARAM{}' not in word and '$' not in word \
                and not os.path.isabs(word) and not any(ch in word for ch in '*?['):
            return word
        return None
    return None
