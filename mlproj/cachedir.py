"""mlproj's one cache root: ``MLPROJ_CACHE_DIR``, else ``cache.dir`` of the user config file
(``mlproj.settings``), else ``$XDG_CACHE_HOME/mlproj`` (an absolute ``XDG_CACHE_HOME`` only, as
the XDG spec says), else ``~/.cache/mlproj``; always resolved.

Clone mirrors (``mlproj.source.cache``), environments and interpreters (``mlproj.envs.store``) and
small derived facts (the sqlite fast path's schema head) all live below it.  Stdlib only, cheap to
import: the run path asks for it before anything heavy is loaded.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path


def cache_root() -> Path:
    from mlproj.settings import value

    explicit = value('cache.dir')
    if explicit:
        return Path(explicit).expanduser().resolve()
    xdg = os.environ.get('XDG_CACHE_HOME')
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / '.cache'
    return (base / 'mlproj').resolve()


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename:
    readers see the old content or the new, never a half-written record.  The temporary file is
    removed when the write fails; the error is the caller's."""
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp')
    try:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
