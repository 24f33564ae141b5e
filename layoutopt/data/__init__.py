"""Data in: observations (CSV, Parquet, frames) and impression event logs, validated and
aggregated to one row per distinct (layout, segment, age cohort)."""

from layoutopt.data.observations import Observations

__all__ = ["Observations"]
