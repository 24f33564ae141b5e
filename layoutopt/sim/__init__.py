"""Synthetic ground-truth worlds (plain, with audiences, in time) and campaigns played on them.

``lo.simulate`` is this package: :func:`run_campaign` is the one campaign driver
(:func:`layoutopt.decide.driver.run`) playing a policy against a world.
"""

from layoutopt.sim.segments import SegmentWorld
from layoutopt.sim.simulate import (
    DEMO_SPACE_PATH,
    HILL2017_CHECKPOINTS,
    CampaignRecord,
    CampaignResult,
    SyntheticWorld,
    WorldBest,
    run_campaign,
)
from layoutopt.sim.timeworld import TimeWorld, event_log, served_clicks

__all__ = [
    "DEMO_SPACE_PATH",
    "HILL2017_CHECKPOINTS",
    "CampaignRecord",
    "CampaignResult",
    "SegmentWorld",
    "SyntheticWorld",
    "TimeWorld",
    "WorldBest",
    "event_log",
    "run_campaign",
    "served_clicks",
]
