"""A layout space as plain data and as TOML: reading a file, checking its tables, writing text.

The plain-data form is what :meth:`LayoutSpace.to_dict` returns: ``{"components": {...},
"forbidden": [...]}`` plus ``"segments"``, ``"attributes"``, ``"retired"``, ``"distinct"``
and ``"optional"`` when present.
The functions here work on that form only; building the space from it is the class's job.

The TOML format (top-level keys before the first table)::

    distinct = [["slot1", "slot2"]]   # optional: slots that never repeat a label
    shared_effects = true             # optional: one effect per item across those slots
    optional = ["reviews"]            # optional: components a layout may leave out

    [components]
    headline = ["h1", "h2", "h3"]
    image = ["img1", "img2", "img3"]
    reviews = ["stars", "quote"]
    slot1 = ["item1", "item2", "item3"]
    slot2 = ["item1", "item2", "item3"]

    [[forbidden]]                     # optional, repeated: a rule per table
    headline = "h2"
    image = "img3"

    [segments]                        # optional: context variables and their values
    member = ["prime", "non_prime"]

    [attributes.headline.h1]          # optional: variant attributes
    free = true
    theme = "speed"

    [retired]                         # optional: retired variants
    image = ["img1"]
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["SPACE_KEYS", "READER_TABLES", "check_space_data", "read_toml", "toml_text"]

#: The top-level keys of the plain-data form (and tables of a layout-space TOML file).
SPACE_KEYS = (
    "components",
    "forbidden",
    "segments",
    "attributes",
    "retired",
    "distinct",
    "shared_effects",
    "optional",
)
#: Tables a space file may carry for the readers of logs and campaigns (the ``[columns]``
#: mapping of a log's names, the campaign's ``[objective]``, ``[guardrails]`` and
#: ``[control]``: :func:`layoutopt.data.mapping.read_campaign_toml`). They describe how to
#: read data into the space, not the space, so :meth:`LayoutSpace.from_toml` leaves them out.
READER_TABLES = ("columns", "objective", "guardrails", "control")


def check_space_data(data: Mapping[str, Any], source: str) -> None:
    """Refuse a plain-data form whose top-level tables are missing, unknown or misshapen.

    Args:
        data: the parsed tables.
        source: name used at the start of error messages (the file path).

    Raises:
        ValueError: without a ``components`` table, for an unknown key, or for ``segments``
            or ``forbidden`` of the wrong shape (with the TOML spelling that fixes it).
    """
    if "components" not in data or not isinstance(data["components"], Mapping):
        raise ValueError(
            f"{source}: needs a [components] table mapping component names to variant lists"
        )
    extra = set(data) - set(SPACE_KEYS)
    if extra:
        raise ValueError(
            f"{source}: unknown top-level key(s) {sorted(extra)}; "
            f"valid: {', '.join(repr(k) for k in SPACE_KEYS)}"
        )
    if "segments" in data and not isinstance(data["segments"], Mapping):
        raise ValueError(
            f"{source}: 'segments' must be a table {{context variable: [values]}}; in TOML "
            "write [segments] then one line per variable"
        )
    if "distinct" in data and (
        isinstance(data["distinct"], str | Mapping)
        or any(isinstance(g, str) for g in data["distinct"])
    ):
        raise ValueError(
            f"{source}: 'distinct' must be a list of groups of component names; in TOML "
            'write distinct = [["slot1", "slot2", "slot3"]] before the first table'
        )
    if "optional" in data and (
        isinstance(data["optional"], str | Mapping)
        or not all(isinstance(c, str) for c in data["optional"])
    ):
        raise ValueError(
            f"{source}: 'optional' must be a list of component names; in TOML write "
            'optional = ["reviews"] before the first table'
        )
    if isinstance(data.get("forbidden"), Mapping):
        raise ValueError(
            f"{source}: 'forbidden' must be a list of rules; in TOML write each rule as "
            "[[forbidden]] (double brackets)"
        )


def read_toml(path: Path) -> dict[str, Any]:
    """The tables of a layout-space TOML file.

    Raises:
        ValueError: naming the file, when it is missing, a directory, not UTF-8, not valid
            TOML or unreadable.
    """
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such layout-space file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory; give a layout-space TOML file") from None
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path}: not UTF-8 text (byte {err.object[err.start : err.start + 1]!r} at "
            f"offset {err.start}); save the TOML file as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML ({err})") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot read the layout-space file ({err.strerror})") from None


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return _quote(v) if isinstance(v, str) else repr(v)


def _array(values) -> str:
    return f"[{', '.join(_quote(v) for v in values)}]"


def toml_text(data: Mapping[str, Any]) -> str:
    """TOML text of the plain-data form, which :func:`read_toml` reads back to equal data.

    Args:
        data: the plain-data form of a space.

    Returns:
        The text, tables in the order components, forbidden rules, segments, attributes,
        retired variants; ending in a newline.
    """
    q = _quote
    lines = []
    if data.get("distinct"):
        # a top-level key: it must come before the first table
        groups = ", ".join(_array(g) for g in data["distinct"])
        lines += [f"distinct = [{groups}]"]
    if data.get("shared_effects"):
        lines += ["shared_effects = true"]
    if data.get("optional"):
        lines += [f"optional = {_array(data['optional'])}"]
    if lines:
        lines += [""]
    lines += ["[components]"]
    lines += [f"{q(c)} = {_array(vs)}" for c, vs in data["components"].items()]
    for rule in data.get("forbidden", ()):
        lines += ["", "[[forbidden]]"] + [f"{q(c)} = {q(v)}" for c, v in rule.items()]
    if data.get("segments"):
        lines += ["", "[segments]"]
        lines += [f"{q(n)} = {_array(vs)}" for n, vs in data["segments"].items()]
    for comp, table in data.get("attributes", {}).items():
        for label, values in table.items():
            lines += ["", f"[attributes.{q(comp)}.{q(label)}]"]
            lines += [f"{q(n)} = {_value(v)}" for n, v in values.items()]
    if "retired" in data:
        lines += ["", "[retired]"]
        lines += [f"{q(c)} = {_array(vs)}" for c, vs in data["retired"].items()]
    return "\n".join(lines) + "\n"
