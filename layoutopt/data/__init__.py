"""Data in: observations (CSV, Parquet, frames; counts or one row per impression) and
impression event logs, validated and aggregated to one row per distinct (layout, segment,
age cohort)."""

from layoutopt.util.lazy import lazy_exports

# Public name -> the module that defines it, imported when the name is first read.
_EXPORTS = {
    "ExtraColumnsWarning": "layoutopt.data.columns",
    "Observations": "layoutopt.data.observations",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "ExtraColumnsWarning",
    "Observations",
]
