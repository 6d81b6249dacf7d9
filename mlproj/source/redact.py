"""Keep credentials out of everything mlproj prints, logs or records."""
from __future__ import annotations

import re
from collections.abc import Iterable

# scheme://userinfo@host  ->  userinfo is whatever sits between '://' and the last '@' before the host
_URL_USERINFO = re.compile(r'(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]*@)')
_MIN_SECRET = 4


def strip_credentials(url: str) -> str:
    """Remove ``user:password@`` / ``token@`` from a URL.

    A bare SSH user name (``ssh://git@host/...``, scp-like ``git@host:path``) is kept: it is not a
    secret and the URL needs it.  Anything with a password part is dropped entirely.
    """
    scheme, sep, rest = url.partition('://')
    if not sep:
        return url
    authority, slash, path = rest.partition('/')
    if '@' in authority:
        userinfo, _, host = authority.rpartition('@')
        user = userinfo.split(':', 1)[0]
        keep_user = scheme.lower() in ('ssh', 'git+ssh', 'ssh+git') and ':' not in userinfo and user
        authority = f'{user}@{host}' if keep_user else host
    return f'{scheme}://{authority}{slash}{path}'


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every known secret replaced by ``***`` and URL user-info removed."""
    for secret in sorted({s for s in secrets if s and len(s) >= _MIN_SECRET}, key=len, reverse=True):
        text = text.replace(secret, '***')

    def _strip(m: re.Match[str]) -> str:
        scheme, userinfo = m.group('scheme'), m.group('userinfo')[:-1]
        if scheme.lower().startswith(('ssh', 'git+ssh')) and ':' not in userinfo:
            return m.group(0)
        return scheme

    return _URL_USERINFO.sub(_strip, text)
