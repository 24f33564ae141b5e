"""JAX's persistent compilation cache for the command line: compile once, not per process.

Each ``layoutopt`` process would otherwise compile the fit, the scoring pass and the
proposal kernels from scratch. The ``layoutopt`` script turns JAX's persistent cache on
before JAX is imported, in the user's cache directory:

- ``$LAYOUTOPT_CACHE_DIR`` when set (``off`` turns the cache off),
- else ``$XDG_CACHE_HOME/layoutopt/jax`` or ``~/.cache/layoutopt/jax`` (Linux),
  ``~/Library/Caches/layoutopt/jax`` (macOS), ``%LOCALAPPDATA%\\layoutopt\\jax`` (Windows);

``layoutopt --no-cache <cmd>`` turns it off for one run. The cache holds XLA executables
keyed by the program, the JAX version and the device, so a stale entry is never used; it is
safe to delete at any time. JAX reads the settings from its ``JAX_*`` environment variables
when it is imported (and the commands import it only when they need it), or they are set on
its configuration when it is already imported.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_dir", "enable_compilation_cache"]

#: The environment variable that moves the cache (or turns it off with ``off``).
CACHE_ENV = "LAYOUTOPT_CACHE_DIR"

# Every compilation is cached, however short: a threshold in seconds would make what is
# cached depend on the machine's load, and a loaded machine is where a second run matters.
_MIN_COMPILE_SECS = "0"


def cache_dir(environ: dict[str, str] | None = None) -> Path | None:
    """The directory of the compilation cache, or None when ``LAYOUTOPT_CACHE_DIR=off``.

    Args:
        environ: the environment to read (default ``os.environ``).

    Returns:
        The cache directory (not created here), or None when the cache is turned off.
    """
    env = os.environ if environ is None else environ
    chosen = env.get(CACHE_ENV, "").strip()
    if chosen.lower() in ("off", "0", "false", "no", "none"):
        return None
    if chosen:
        return Path(chosen).expanduser()
    if sys.platform == "win32":
        base = Path(env.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "layoutopt" / "jax"


def enable_compilation_cache() -> Path | None:
    """Turn JAX's persistent compilation cache on for this process (see the module doc).

    Settings the user already gave JAX (``JAX_COMPILATION_CACHE_DIR``) are kept. A cache
    directory that cannot be created turns the cache off quietly: it only saves time.

    Returns:
        The directory in use, or None when the cache is off.
    """
    path = cache_dir()
    if path is None:
        return None
    given = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if given:
        return Path(given)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(path)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", _MIN_COMPILE_SECS)
    jax = sys.modules.get("jax")  # already imported: its flags read the environment no more
    if jax is not None:
        jax.config.update("jax_compilation_cache_dir", str(path))
        jax.config.update(
            "jax_persistent_cache_min_compile_time_secs",
            float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
        )
    return path
