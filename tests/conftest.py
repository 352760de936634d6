"""Test-session setup.

All tests (and the command-line runs they start) share one persistent XLA compilation
cache, so the many small smoke runs compile each distinct program once per session.
"""

import os
import shutil
import tempfile

_CACHE = tempfile.mkdtemp(prefix="jaxgen-xla-cache-")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE, ignore_errors=True)
