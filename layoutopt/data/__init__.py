"""Data in: observations (CSV, Parquet, frames; counts or one row per impression) and
impression event logs, validated and aggregated to one row per distinct (layout, segment,
age cohort)."""

from layoutopt.data.columns import ExtraColumnsWarning
from layoutopt.data.observations import Observations

__all__ = ["ExtraColumnsWarning", "Observations"]
