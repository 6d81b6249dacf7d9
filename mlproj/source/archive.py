"""``.zip`` project archives (MLflow's other URI form): a local file, ``file://`` or ``http(s)://``.

As in MLflow the archive is extracted as is (no top-level folder stripping; use ``#folder``).
Unlike MLflow, the download is streamed to disk, the extraction refuses members that would
escape the checkout (absolute paths, ``..``) and archives over ``MLPROJ_ZIP_MAX_BYTES``
uncompressed (default 4 GiB), and the checkout is removed after the run.  A damaged archive
(bad CRC, truncated member), a compression method Python's ``zipfile`` cannot read (e.g. LZMA
without the module, or a proprietary method), an encrypted member or a full / read-only disk
is a one-line ``SourceError``, never a traceback.  Members are only extracted; what mlproj then
reads of the project (MLproject, env files) goes through ``mlproj.safefile`` with the
extraction directory as root.
"""
from __future__ import annotations

import shutil
import stat
import sys
from pathlib import Path

from mlproj.errors import SourceError
from mlproj.source import ResolvedSource
from mlproj.source.uri import ParsedURI

DEFAULT_MAX_BYTES = 4 << 30
DOWNLOAD_TIMEOUT = 120.0


def _max_bytes() -> int:
    from mlproj.settings import env_value

    return int(env_value('MLPROJ_ZIP_MAX_BYTES'))


def download(parsed: ParsedURI, dest: Path) -> None:
    import base64
    import urllib.error
    import urllib.request

    from mlproj.source.redact import redact

    request = urllib.request.Request(parsed.url, headers={'User-Agent': 'mlproj'})
    if parsed.username and parsed.password is not None:
        pair = f'{parsed.username}:{parsed.password}'.encode()
        request.add_header('Authorization', 'Basic ' + base64.b64encode(pair).decode())
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as resp, open(dest, 'wb') as f:
            shutil.copyfileobj(resp, f, 1 << 20)
    except urllib.error.HTTPError as e:
        raise SourceError(f'cannot download the archive: HTTP {e.code}', parsed.display) from None
    except (urllib.error.URLError, OSError) as e:
        reason = redact(str(getattr(e, 'reason', e)), [parsed.password])
        raise SourceError(f'cannot download the archive: {reason}', parsed.display) from None


def extract(archive: Path, dest: Path, where: str) -> None:
    import zipfile

    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise SourceError(f'not a valid zip archive: {_reason(e)}', where) from None
    with zf:
        members = zf.infolist()
        if sum(m.file_size for m in members) > _max_bytes():
            raise SourceError('the archive is larger than MLPROJ_ZIP_MAX_BYTES when extracted', where)
        for m in members:
            name = m.filename.replace('\\', '/')
            parts = [p for p in name.split('/') if p not in ('', '.')]
            if name.startswith('/') or '..' in parts or (parts and len(parts[0]) == 2 and parts[0][1] == ':'):
                raise SourceError(f'zip member {m.filename!r} attempts path traversal', where)
            if any(ord(c) < 32 for c in name):
                raise SourceError(f'zip member {m.filename!r} has control characters in its name', where)
        for m in members:
            try:
                target = Path(zf.extract(m, dest))
                mode = m.external_attr >> 16
                if not m.is_dir() and mode & 0o111 and not stat.S_ISLNK(mode):
                    target.chmod(target.stat().st_mode | 0o111)
            except (zipfile.BadZipFile, EOFError, zlib_error()) as e:
                raise SourceError(f'zip member {m.filename!r} is damaged: {_reason(e)}', where) from None
            except NotImplementedError as e:
                raise SourceError(f'zip member {m.filename!r} uses a compression method mlproj cannot read: '
                                  f'{_reason(e)}', where) from None
            except RuntimeError as e:  # an encrypted member
                raise SourceError(f'zip member {m.filename!r} cannot be extracted: {_reason(e)}', where) from None
            except OSError as e:
                raise SourceError(f'cannot extract the archive into {dest}: {e.strerror or _reason(e)}',
                                  where) from None


def zlib_error() -> type[BaseException]:
    import zlib

    return zlib.error


def _reason(e: BaseException) -> str:
    from mlproj.safeout import printable

    text = str(e).strip() or type(e).__name__
    return printable(text.splitlines()[0][:200])


def resolve_zip(parsed: ParsedURI, rev: str | None, *, keep_checkout: bool = False) -> ResolvedSource:
    from mlproj.source.cache import CloneCache
    from mlproj.source.tree import contained_subdirectory

    if rev is not None:
        raise SourceError('--version is only supported for Git sources, not for a zip archive', parsed.display)
    store = CloneCache()
    checkout = store.new_checkout('archive-zip', parsed.display, keep_checkout)
    try:
        if parsed.is_remote:
            archive = checkout.with_name(checkout.name + '.zip')
            try:
                download(parsed, archive)
                extract(archive, checkout, parsed.display)
            finally:
                archive.unlink(missing_ok=True)
        else:
            extract(Path(parsed.url), checkout, parsed.display)
        project_dir = contained_subdirectory(checkout, parsed.subdirectory, parsed.display)
    except BaseException:
        store.remove_checkout(checkout)
        raise
    if keep_checkout:
        print(f'mlproj: extracted archive kept at {checkout}', file=sys.stderr)
    base = parsed.display if parsed.is_remote else Path(parsed.url).resolve().as_uri()
    name = base + (f'#{parsed.subdirectory}' if parsed.subdirectory else '')
    return ResolvedSource(uri=name, project_dir=project_dir, root=checkout, subdirectory=parsed.subdirectory,
                          is_remote=parsed.is_remote, source_name=name, origin_uri=base,
                          _cleanup=None if keep_checkout else (lambda: store.remove_checkout(checkout)))
