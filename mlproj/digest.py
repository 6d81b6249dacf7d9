"""SHA-256 for the run path without loading OpenSSL.

``hashlib`` imports ``_hashlib``, which loads the OpenSSL library: 2-3 ms of a trivial run's
~0.1 s overhead (``benchmarks/results/run.md``), paid only for the few short digests a run takes
(the YAML cache key, the run-cache key, environment hashes).  CPython's own SHA-256 (the module
``hashlib`` itself falls back to when it is built without OpenSSL: ``_sha2`` since 3.12,
``_sha256`` before) costs ~0.1 ms to import and gives the same digest; anywhere it is missing (another
implementation, a build without it) this is ``hashlib.sha256``.  ``tests/unit/test_digest.py``
compares both over many inputs.
"""
from __future__ import annotations

from typing import Any

try:
    from _sha2 import sha256 as _sha256  # type: ignore[import-not-found]  # CPython 3.12+
except ImportError:
    try:
        from _sha256 import sha256 as _sha256  # type: ignore[import-not-found,no-redef]  # CPython 3.11
    except ImportError:  # pragma: no cover - not CPython
        from hashlib import sha256 as _sha256  # type: ignore[assignment]


def sha256(data: bytes = b'') -> Any:
    """A SHA-256 object (``update``, ``digest``, ``hexdigest``, ``copy``), as ``hashlib.sha256``."""
    return _sha256(data)
