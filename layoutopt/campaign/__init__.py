"""Campaigns: the durable store, the campaign round after round, and its report."""

from layoutopt.campaign.campaign import Campaign, IngestResult, Proposal

__all__ = ["Campaign", "IngestResult", "Proposal"]
