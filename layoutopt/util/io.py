"""Atomic file output: write to a temporary file in the target's directory, then rename.

A reader never sees a half-written file, and a failed or interrupted write leaves nothing
behind (and an existing file at the target untouched).
"""

from __future__ import annotations

import contextlib
import csv
import os
import secrets
import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "FORMULA_PREFIXES",
    "QUOTED_PREFIXES",
    "atomic_dir",
    "csv_safe",
    "unformula",
    "write_csv",
    "atomic_path",
    "check_output_path",
    "mask_url",
    "one_line",
    "scrub_password",
    "url_passwords",
]


def check_output_path(path: str | Path, suffixes: tuple[str, ...] | None = None) -> Path:
    """Fail early, before any long computation, if ``path`` cannot be an output file.

    Args:
        path: the file to be written.
        suffixes: accepted suffixes (lower case, with the dot); ``None`` accepts any.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: if the suffix is not accepted, the directory does not exist, or the path
            is an existing directory.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory; give a file name")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise ValueError(
            f"{path}: unsupported output format {path.suffix or '(no suffix)'!r}; "
            f"use one of {list(suffixes)}"
        )
    parent = path.parent
    for above in (parent, *parent.parents):
        if above.exists() and not above.is_dir():
            raise ValueError(f"{path}: {str(above)!r} is a file, not a directory")
    if not parent.is_dir():
        raise ValueError(f"{path}: directory {str(parent)!r} does not exist")
    _probe_writable(path)
    return path


def _probe_writable(path: Path) -> None:
    """Create and remove a probe file next to ``path``: permission bits do not stop root,
    but a read-only file system or a full disk does, and both should fail before a fit."""
    probe = path.with_name(f".{path.name}.{secrets.token_hex(4)}.probe")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as err:
        raise ValueError(
            f"{path}: cannot create files in {str(path.parent)!r} ({_reason(err)})"
        ) from None
    os.close(fd)
    _remove(probe)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write to; renamed over ``path`` when the block succeeds.

    The temporary file lives in the same directory (so the rename is atomic on POSIX) and
    keeps ``path``'s suffix (so writers that pick a format by suffix still work). If the
    block raises, the temporary file is removed and ``path`` is left as it was.

    Args:
        path: the final file.

    Yields:
        The temporary :class:`~pathlib.Path` to write.

    Examples:
        >>> with atomic_path("grid.parquet") as tmp:  # doctest: +SKIP
        ...     frame.to_parquet(tmp)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        # The temporary name means nothing to the user: name the target instead.
        raise OSError(err.errno, f"cannot write {path}: {_reason(err)}") from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp)
        else:
            os.unlink(tmp)


def _reason(err: OSError) -> str:
    return err.strerror or " ".join(str(err).split())


def one_line(message: object) -> str:
    """A message on one line: runs of whitespace (newlines included) become one space."""
    return " ".join(str(message).split())


_SECRET_KEYS = ("password", "passwd", "pwd", "sslpassword")


def _userinfo_end(rest: str) -> int:
    """Index of the ``@`` that ends a URL's user info (the last one before the query), or -1."""
    head = rest.split("?", 1)[0]
    return head.rfind("@")


def mask_url(url: object) -> str:
    """A store target as it may be shown: a URL's password (and any ``password=`` query
    value) replaced by ``***``; a file path or a URL without a password is returned as is.

    Works on URLs that do not parse (a password with ``@`` or ``/`` in it, a non-numeric
    port): the user info is everything before the last ``@`` ahead of the query string.

    Args:
        url: a file path or a database URL.

    Returns:
        The text to print or put in a message.

    Examples:
        >>> mask_url("postgresql://me:s3cret@db.example:5432/ab")
        'postgresql://me:***@db.example:5432/ab'
        >>> mask_url("postgresql://me@db/ab?password=s3cret&sslmode=require")
        'postgresql://me@db/ab?password=***&sslmode=require'
    """
    text = str(url)
    if "://" not in text:
        return text
    scheme, rest = text.split("://", 1)
    at = _userinfo_end(rest)
    if at >= 0 and ":" in rest[:at]:
        user = rest[:at].split(":", 1)[0]
        rest = f"{user}:***{rest[at:]}"
    if "?" in rest:
        head, query = rest.split("?", 1)
        parts = []
        for part in query.split("&"):
            key = part.split("=", 1)[0]
            if "=" in part and key.lower() in _SECRET_KEYS:
                part = f"{key}=***"
            parts.append(part)
        rest = head + "?" + "&".join(parts)
    return f"{scheme}://{rest}"


def url_passwords(url: object) -> list[str]:
    """The password texts in a URL (user info and ``password=`` query values), raw and
    percent-decoded, longest first; empty for a file path."""
    text = str(url)
    if "://" not in text:
        return []
    rest = text.split("://", 1)[1]
    found = []
    at = _userinfo_end(rest)
    if at >= 0 and ":" in rest[:at]:
        found.append(rest[:at].split(":", 1)[1])
    if "?" in rest:
        for part in rest.split("?", 1)[1].split("&"):
            key, _, value = part.partition("=")
            if key.lower() in _SECRET_KEYS:
                found.append(value)
    out = {v for f in found for v in (f, urllib.parse.unquote(f)) if v}
    return sorted(out, key=len, reverse=True)


def scrub_password(message: object, url: object) -> str:
    """``message`` with every password of ``url`` (see :func:`url_passwords`) replaced by
    ``***``: for driver errors that may quote the connection string."""
    text = str(message)
    for secret in url_passwords(url):
        text = text.replace(secret, "***")
    return text


#: First characters that make a spreadsheet read a CSV cell as a formula (OWASP's list).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


#: What :func:`csv_safe` quotes: the formula prefixes and a leading quote (doubled).
QUOTED_PREFIXES = (*FORMULA_PREFIXES, "'")


def _neutral(value: object) -> object:
    if isinstance(value, str) and value.startswith(QUOTED_PREFIXES):
        return "'" + value
    return value


def _is_text(column) -> bool:
    return column.dtype == object or str(column.dtype).startswith(("string", "str"))


def csv_safe(frame):
    """A copy of a DataFrame safe to open in a spreadsheet: every text cell and column name
    that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
    ``'`` (numbers are left alone, so ``-0.5`` stays a number); a text that starts with
    ``'`` gets a second one, so that :func:`unformula` undoes exactly this.

    Label columns read back by layoutopt accept the ``'`` form (:func:`unformula`), so a
    design or proposal file still round-trips.

    Args:
        frame: a :class:`pandas.DataFrame`.

    Returns:
        The neutralised copy.

    Examples:
        >>> import pandas as pd
        >>> csv_safe(pd.DataFrame({"h": ["=1+2", "ok"], "n": [-1, 2]})).to_dict("list")
        {'h': ["'=1+2", 'ok'], 'n': [-1, 2]}
    """
    out = frame.copy()
    for col in out.columns:
        if _is_text(out[col]):
            out[col] = out[col].map(_neutral)
        elif str(out[col].dtype) == "category":
            out[col] = out[col].astype(object).map(_neutral)
    out.columns = [_neutral(str(c)) for c in out.columns]
    return out


def unformula(text: str) -> str:
    """The text a :func:`csv_safe` cell stood for: ``'=x`` -> ``=x``, ``''a`` -> ``'a``;
    any other text as is."""
    if text.startswith("'") and text[1:].startswith(QUOTED_PREFIXES):
        return text[1:]
    return text


def write_csv(frame, path: str | Path) -> Path:
    """Write ``frame`` as CSV (no index), neutralised by :func:`csv_safe`, atomically.

    Args:
        frame: a :class:`pandas.DataFrame`.
        path: the CSV file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    safe = csv_safe(frame)
    # The CSV writer does not quote a lone carriage return, which a reader takes for a line
    # end: quote every text cell when one holds a CR.
    has_cr = any(
        safe[c].map(lambda v: isinstance(v, str) and "\r" in v).any()
        for c in safe.columns
        if _is_text(safe[c])
    )
    quoting = csv.QUOTE_NONNUMERIC if has_cr else csv.QUOTE_MINIMAL
    with atomic_path(path) as tmp:
        safe.to_csv(tmp, index=False, quoting=quoting)
    return path


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """A temporary folder to fill; it replaces ``path`` (a folder) when the block succeeds.

    The temporary folder lives next to ``path``. On success an existing ``path`` is renamed
    aside, the new folder renamed into place, and the old one removed: a reader sees the old
    files or the new ones, never a mix (a crash between the two renames leaves the old folder
    under ``.NAME.*.old``). If the block raises, the temporary folder is removed and ``path``
    is left as it was.

    Args:
        path: the final folder; its parent must exist.

    Yields:
        The temporary :class:`~pathlib.Path` to write files into.

    Raises:
        ValueError: if ``path`` exists and is not a folder.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path}: exists and is not a directory")
    token = secrets.token_hex(4)
    tmp = path.with_name(f".{path.name}.{token}.tmp")
    old = path.with_name(f".{path.name}.{token}.old")
    try:
        os.mkdir(tmp)
    except OSError as err:
        raise OSError(err.errno, f"cannot write {path}: {_reason(err)}") from None
    try:
        yield tmp
        if path.exists():
            os.rename(path, old)
        try:
            os.rename(tmp, path)
        except BaseException:
            if old.exists():
                os.rename(old, path)
            raise
    except OSError as err:
        _remove(tmp)
        raise OSError(err.errno, f"cannot write {path}: {_reason(err)}") from None
    except BaseException:
        _remove(tmp)
        raise
    _remove(old)
