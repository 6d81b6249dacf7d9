"""Parameter binding: validation by type, path/uri resolution, and building the shell command.

Values reach the child byte-exact: each substituted value (and each extra ``--key value``) is
``shlex.quote``d, never concatenated raw into the shell string.

Values given with ``-P`` are checked against their type.  A *default* that does not parse as its
declared type (``type: int, default: None``, lint rule MLP006) is passed as given when it is used,
as MLflow does; with ``strict`` (``mlproj run --strict``) using it is refused.  A ``uri`` value
without a scheme is a local path and is made absolute against the caller's cwd, as the MLflow
Projects guide describes (MLflow 3 refuses it: a deliberate difference).
"""
from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlproj.errors import BadArgumentError, ParamError
from mlproj.spec_model import EntryPoint, iter_template

EXTRA_KEY_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.\-]*$')


@dataclass(frozen=True)
class BoundParams:
    """An entry point's parameters bound to the run's values: substituted, extra, and as MLflow logs them."""

    values: dict[str, str]                    # declared parameters, declaration order
    extras: dict[str, str]                    # undeclared -P keys, in the order given
    logged: dict[str, str] = field(default_factory=dict)  # what MLflow records (unquoted)

    def all(self) -> dict[str, str]:
        return {**self.values, **self.extras}


def parse_key_values(items: list[str] | tuple[str, ...], flag: str = '-P', *, allow_flags: bool = False
                     ) -> dict[str, Any]:
    """Parse repeated ``NAME=VALUE`` options; split on the first ``=`` only; no repeats."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition('=')
        if not sep:
            if allow_flags and name:
                out[name] = True
                continue
            raise BadArgumentError(f'invalid {flag} value {item!r}: use {flag} name=value')
        if not name:
            raise BadArgumentError(f'invalid {flag} value {item!r}: the name is empty')
        if name in out:
            raise BadArgumentError(f'repeated {flag} parameter {name!r}')
        out[name] = value
    return out


# --------------------------------------------------------------------------------------------
# what a value of each type looks like: -P values (validate) and MLproject defaults (the loader's
# MLP006) are judged by the same rules

def default_parses(ptype: str, value: Any) -> bool:
    """Whether a YAML default is acceptable for its declared type."""
    if value is None:
        return True
    if ptype == 'int':
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        if isinstance(value, float):
            return value.is_integer()
        return parses_int(str(value))
    if ptype == 'float':
        if isinstance(value, bool):
            return False
        if isinstance(value, (int, float)):
            return True
        return parses_float(str(value))
    if ptype == 'bool':
        return isinstance(value, bool) or str(value).strip().lower() in BOOL_WORDS
    if isinstance(value, (dict, list)):
        return False
    return True


BOOL_WORDS = {'true': True, 'false': False, '1': True, '0': False, 'yes': True, 'no': False,
              'on': True, 'off': False, 'y': True, 'n': False}


# ASCII digits only: Python's int()/float() also take Arabic-Indic, fullwidth and other Unicode
# digits ('١٢٣', '１２'), which a program parsing its argv in another language would not.  float
# keeps what float() and every common parser accept: exponents, inf / infinity / nan (any case).
_INT_RE = re.compile(r'[+-]?[0-9]+')
_FLOAT_RE = re.compile(r'[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)',
                       re.IGNORECASE)
_ASCII_SPACE = ' \t\n\r\f\v'


def parses_int(text: str) -> bool:
    """An ASCII integer (surrounding ASCII whitespace allowed)."""
    return _INT_RE.fullmatch(text.strip(_ASCII_SPACE)) is not None


def parses_float(text: str) -> bool:
    """An ASCII float, ``inf`` or ``nan`` (surrounding ASCII whitespace allowed)."""
    return _FLOAT_RE.fullmatch(text.strip(_ASCII_SPACE)) is not None


def _check_text(name: str, value: str, where: str) -> None:
    if '\x00' in value:
        raise ParamError(f'value of parameter {name!r} contains a NUL byte, which no program argument can carry',
                         where)


def _has_scheme(value: str) -> bool:
    scheme = urlparse(value).scheme
    return len(scheme) > 1  # 'c:' is a Windows drive, not a scheme


def validate(ptype: str, name: str, value: str, where: str) -> None:
    """Raise ParamError unless ``value`` is a valid ``ptype``."""
    text = value.strip()
    if ptype == 'int':  # ASCII digits only (int() would take '١٢٣' and '１２'); no '_' separators
        if not parses_int(value):
            raise ParamError(f'parameter {name!r} expects an int (ASCII digits), got {value!r}', where)
    elif ptype == 'float':  # ASCII: 1.5, -1e-3, .5, 3, inf, infinity, nan (any case); no '_', no ','
        if not parses_float(value):
            raise ParamError(f'parameter {name!r} expects a float (ASCII digits, 1e-3, inf, nan), got {value!r}',
                             where)
    elif ptype == 'bool':
        if text.lower() not in BOOL_WORDS:
            raise ParamError(f'parameter {name!r} expects a bool (true/false/1/0/yes/no), got {value!r}', where)
    elif ptype == 'uri':
        if not text:
            raise ParamError(f'parameter {name!r} expects a URI (s3://, file://, ...) or a local path, got an '
                             'empty value', where)


def resolve_path(name: str, value: str, *, cwd: Path, project_dir: Path | None, from_default: bool,
                 storage_dir: str | None, download: bool, where: str) -> str:
    """A local path becomes absolute (against the caller's cwd); a remote URI is downloaded."""
    parsed = urlparse(value)
    if _has_scheme(value) and not (parsed.scheme == 'file' and not parsed.netloc):
        if not download:
            return value
        return _download(name, value, storage_dir, where)
    local = parsed.path if parsed.scheme == 'file' else value
    local = os.path.expanduser(local)
    candidate = Path(cwd, local)
    if not candidate.exists() and from_default and project_dir is not None and (project_dir / local).exists():
        candidate = project_dir / local  # a default that names a file shipped with the project
    if not candidate.exists():
        raise ParamError(f'parameter {name!r}: no such file or directory {value!r} (relative to {cwd})', where)
    return os.path.abspath(candidate)


def resolve_uri(value: str, *, cwd: Path, project_dir: Path | None, from_default: bool) -> str:
    """A ``uri`` without a scheme is a local path: made absolute (it need not exist yet)."""
    if _has_scheme(value):
        return value
    local = os.path.expanduser(value)
    candidate = Path(cwd, local)
    if not candidate.exists() and from_default and project_dir is not None and (project_dir / local).exists():
        candidate = project_dir / local
    return os.path.abspath(candidate)


def _download(name: str, uri: str, storage_dir: str | None, where: str) -> str:
    import tempfile

    try:
        from mlflow.artifacts import download_artifacts
    except ImportError as e:  # pragma: no cover - mlflow-skinny is a dependency
        raise ParamError(f'parameter {name!r}: cannot download {uri!r}: {e}', where) from None
    dst = tempfile.mkdtemp(prefix=f'mlproj-param-{name}-', dir=storage_dir)
    try:
        return download_artifacts(artifact_uri=uri, dst_path=dst)
    except Exception as e:
        raise ParamError(f'parameter {name!r}: cannot download {uri!r}: {str(e).splitlines()[0]}', where) from None


def bind(entry_point: EntryPoint, user: Mapping[str, Any], *, cwd: str | Path, project_dir: Path | None = None,
         storage_dir: str | None = None, resolve_paths: bool = True, download: bool = True,
         where: str = '', strict: bool = False) -> BoundParams:
    """Fill in defaults, validate every value, resolve ``path`` and ``uri`` parameters.

    Raises ``ParamError`` naming the parameter; missing required parameters are reported together.
    A default that is invalid for its type is passed as given unless ``strict``.
    """
    cwd = Path(cwd)
    where = where or f'entry point {entry_point.name!r}'
    missing = [p.name for p in entry_point.parameters.values() if p.required and p.name not in user]
    if missing:
        raise ParamError('missing value for parameter' + ('s ' if len(missing) > 1 else ' ')
                         + ', '.join(repr(m) for m in missing) + ' (pass -P ' + missing[0] + '=...)', where)
    values: dict[str, str] = {}
    logged: dict[str, str] = {}
    for p in entry_point.parameters.values():
        from_default = p.name not in user
        raw = user[p.name] if not from_default else p.default
        text = _to_text(raw)
        _check_text(p.name, text, where)
        if from_default and not default_parses(p.type, p.default):
            # MLP006: MLflow hands such a default to the program unchanged
            if strict:
                raise ParamError(f'MLP006 default {p.default!r} of parameter {p.name!r} is not a valid {p.type} '
                                 f'(--strict; pass -P {p.name}=...)', where)
            values[p.name] = logged[p.name] = text
            continue
        validate(p.type, p.name, text, where)
        value = text
        if p.type == 'path' and resolve_paths:
            value = resolve_path(p.name, text, cwd=cwd, project_dir=project_dir, from_default=from_default,
                                 storage_dir=storage_dir, download=download, where=where)
        elif p.type == 'uri' and resolve_paths:
            value = resolve_uri(text, cwd=cwd, project_dir=project_dir, from_default=from_default)
        values[p.name] = value
        logged[p.name] = text if value != text and _has_scheme(text) else value
    extras: dict[str, str] = {}
    for key, raw in user.items():
        if key in entry_point.parameters:
            continue
        if not isinstance(key, str) or not EXTRA_KEY_RE.match(key):
            raise ParamError(f'extra parameter name {key!r} is not allowed (letters, digits, _ . - ; '
                             'not starting with -)', where)
        text = _to_text(raw)
        _check_text(key, text, where)
        extras[key] = text
        logged[key] = text
    return BoundParams(values, extras, logged)


def _to_text(raw: Any) -> str:
    if isinstance(raw, bool):
        return 'True' if raw else 'False'
    return raw if isinstance(raw, str) else str(raw)


def build_command(entry_point: EntryPoint, bound: BoundParams) -> str:
    """Substitute quoted values into the command and append extras as ``--key value``."""
    if entry_point.command is None:
        raise ParamError(f'entry point {entry_point.name!r} has no command [MLP014]')
    pieces: list[str] = []
    for kind, value in iter_template(entry_point.command):
        if kind == 'text':
            pieces.append(value)
        elif value in bound.values:
            pieces.append(shlex.quote(bound.values[value]))
        else:  # the loader rejects these (MLP012); keep the guard for hand-built entry points
            raise ParamError(f'command uses {{{value}}} but entry point {entry_point.name!r} declares no such '
                             'parameter [MLP012]')
    command = ''.join(pieces)
    for key, value in bound.extras.items():
        command += f' --{shlex.quote(key)} {shlex.quote(value)}'
    return command
