"""Plain helpers of the backend tests (their fixtures live in the conftest.py files under tests/backends)."""
from __future__ import annotations

# the fake Databricks workspace's token: it must never appear in output, uploads, runs or requests
DATABRICKS_TOKEN = 'dapi-fake-7c3e91d0b2a44f58-SECRET'
