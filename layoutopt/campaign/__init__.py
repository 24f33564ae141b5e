"""Campaigns: the durable store, the campaign round after round, and its report."""

from layoutopt.util.lazy import lazy_exports

# Public name -> the module that defines it, imported when the name is first read.
_EXPORTS = {
    "Campaign": "layoutopt.campaign.campaign",
    "IngestResult": "layoutopt.campaign.campaign",
    "Proposal": "layoutopt.campaign.campaign",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "Campaign",
    "IngestResult",
    "Proposal",
]
