"""The GitHub Actions runtime as seen from a step: context, file commands, masking.

Everything reads ``os.environ`` (or a mapping passed in), so the same code serves the Action, a
plain ``run:`` step and tests.  Workflow commands (``::add-mask::``, ``::warning::``) are printed
only when ``GITHUB_ACTIONS=true``: outside Actions a mask command would print the secret itself.
Every command's properties and message pass through ``mlproj.safeout`` first (control characters
escaped, then GitHub's own ``%0A`` escaping), so project-controlled text in a message or a file
name can neither end the command nor start another one.
"""
from __future__ import annotations

import json
import os
import re
import sys
import uuid
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from mlproj.errors import BadArgumentError
from mlproj.safeout import actions_line, printable

# A step summary is capped by GitHub at 1 MiB per step; stay well below it.
SUMMARY_CAP = 900 * 1024

# Events whose caches must not be written: a cache saved there is readable by other branches
# (cache poisoning across a trust boundary), the rule astral-sh/setup-uv applies.
NO_CACHE_EVENTS = ('pull_request_target', 'workflow_run', 'release')

OUTPUT_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_-]*$')


@dataclass(frozen=True)
class ActionsContext:
    """What a step knows about the workflow run (``GITHUB_*`` variables and the event payload)."""
    repository: str = ''                # owner/name
    server_url: str = 'https://github.com'
    api_url: str = 'https://api.github.com'
    event_name: str = ''
    sha: str = ''                       # GITHUB_SHA: the merge commit on pull_request events
    ref_type: str = ''
    run_id: str = ''
    run_attempt: str = ''
    workspace: str = ''
    event: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ActionsContext:
        env = os.environ if environ is None else environ
        return cls(
            repository=env.get('GITHUB_REPOSITORY', ''),
            server_url=(env.get('GITHUB_SERVER_URL') or 'https://github.com').rstrip('/'),
            api_url=(env.get('GITHUB_API_URL') or 'https://api.github.com').rstrip('/'),
            event_name=env.get('GITHUB_EVENT_NAME', ''),
            sha=env.get('GITHUB_SHA', ''),
            ref_type=env.get('GITHUB_REF_TYPE', ''),
            run_id=env.get('GITHUB_RUN_ID', ''),
            run_attempt=env.get('GITHUB_RUN_ATTEMPT', ''),
            workspace=env.get('GITHUB_WORKSPACE', ''),
            event=load_event(env.get('GITHUB_EVENT_PATH')),
        )

    @property
    def pull_request(self) -> Mapping[str, Any] | None:
        pr = self.event.get('pull_request')
        if isinstance(pr, Mapping):
            return pr
        run = self.event.get('workflow_run')
        if isinstance(run, Mapping) and run.get('pull_requests'):
            first = run['pull_requests'][0]
            return first if isinstance(first, Mapping) else None
        return None

    @property
    def head_sha(self) -> str:
        """The commit the user pushed: the PR head, not the merge commit GitHub builds."""
        pr = self.pull_request
        if pr is not None:
            head = pr.get('head')
            if isinstance(head, Mapping) and head.get('sha'):
                return str(head['sha'])
        run = self.event.get('workflow_run')
        if isinstance(run, Mapping) and run.get('head_sha'):
            return str(run['head_sha'])
        return self.sha

    @property
    def pr_number(self) -> int | None:
        pr = self.pull_request
        if pr is not None and pr.get('number') is not None:
            return int(pr['number'])
        issue = self.event.get('issue')  # issue_comment on a pull request
        if isinstance(issue, Mapping) and issue.get('pull_request') and issue.get('number') is not None:
            return int(issue['number'])
        return None

    @property
    def run_url(self) -> str:
        if not (self.repository and self.run_id):
            return ''
        url = f'{self.server_url}/{self.repository}/actions/runs/{self.run_id}'
        if self.run_attempt and self.run_attempt != '1':
            url += f'/attempts/{self.run_attempt}'
        return url

    @property
    def repo_url(self) -> str:
        return f'{self.server_url}/{self.repository}' if self.repository else ''

    @property
    def cache_allowed(self) -> bool:
        """False where saving a cache would cross a trust boundary (release, tag push, PR target...)."""
        return self.event_name not in NO_CACHE_EVENTS and self.ref_type != 'tag'


def load_event(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def in_actions(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get('GITHUB_ACTIONS') == 'true'


# ------------------------------------------------------------------------------------------
# workflow commands


def escape_data(text: str) -> str:
    return text.replace('%', '%25').replace('\r', '%0D').replace('\n', '%0A')


def escape_property(text: str) -> str:
    return escape_data(text).replace(':', '%3A').replace(',', '%2C')


def command(name: str, message: str = '', **props: Any) -> str:
    shown = ','.join(f'{k}={escape_property(printable(v))}' for k, v in props.items() if v not in (None, ''))
    return f'::{name}{" " + shown if shown else ""}::{escape_data(printable(message, keep_newlines=True))}'


def mask(value: str | None, out: TextIO | None = None, environ: Mapping[str, str] | None = None) -> None:
    """Register ``value`` with the runner's secret masker (each line separately)."""
    if not value or not in_actions(environ):
        return
    out = out or sys.stdout
    for line in value.splitlines():
        if line.strip():
            out.write(f'::add-mask::{line}\n')
    out.flush()


def annotate(level: str, message: str, *, title: str | None = None, out: TextIO | None = None,
             environ: Mapping[str, str] | None = None) -> None:
    """``::warning::`` & co. in Actions, ``mlproj: warning: ...`` elsewhere."""
    if in_actions(environ):
        out = out or sys.stdout
        out.write(command(level, message, title=title) + '\n')
        out.flush()
    else:
        label = {'notice': 'note'}.get(level, level)
        print(f'mlproj: {label}: {printable(message)}', file=out or sys.stderr)


def log_line(text: str, out: TextIO | None = None, environ: Mapping[str, str] | None = None) -> None:
    """Print one line of mlproj's own output: neutralised for the runner inside Actions
    (``actions_line``), control characters escaped elsewhere."""
    print(actions_line(text) if in_actions(environ) else printable(text), file=out or sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------
# file commands


def format_output(name: str, value: str) -> str:
    """One ``$GITHUB_OUTPUT`` entry; multi-line values use a random heredoc delimiter."""
    if not OUTPUT_NAME_RE.match(name):
        raise BadArgumentError(f'invalid output name {name!r}')
    if '\n' not in value and '\r' not in value:
        return f'{name}={value}\n'
    while True:
        delimiter = f'ghadelimiter_{uuid.uuid4().hex}'
        if delimiter not in value:
            break
    return f'{name}<<{delimiter}\n{value}\n{delimiter}\n'


def write_outputs(path: str | None, outputs: Mapping[str, str]) -> None:
    if not path:
        return
    text = ''.join(format_output(k, '' if v is None else str(v)) for k, v in outputs.items())
    with open(path, 'a', encoding='utf-8') as f:
        f.write(text)


def cap_text(text: str, cap: int, note: str = '\n\n*(truncated)*\n') -> str:
    """``text`` cut to at most ``cap`` UTF-8 bytes, on a line boundary, with a note."""
    data = text.encode('utf-8')
    if len(data) <= cap:
        return text
    budget = max(0, cap - len(note.encode('utf-8')))
    cut = data[:budget].decode('utf-8', 'ignore')
    if '\n' in cut:
        cut = cut[:cut.rindex('\n')]
    return cut + note


def append_summary(path: str | None, markdown: str, cap: int = SUMMARY_CAP) -> None:
    if not path:
        return
    with open(path, 'a', encoding='utf-8') as f:
        f.write(cap_text(markdown, cap))
        if not markdown.endswith('\n'):
            f.write('\n')


# ------------------------------------------------------------------------------------------
# the environment project code sees


def scrub_credentials(environ: MutableMapping[str, str]) -> list[str]:
    """Remove GitHub credentials and act's ``INPUT_*`` copies of the action inputs; return the names.

    On GitHub a composite action's steps get no ``INPUT_*`` variables (actions/runner#665), but
    ``act`` exports every input that way (``INPUT_GITHUB-TOKEN`` included), so both are removed.
    """
    from mlproj.childenv import strip_ci_secrets  # the one place that names them

    return strip_ci_secrets(environ)
