"""Synthetic ground-truth worlds (plain, with audiences, in time, of several metrics), and
campaigns played on them.

``lo.simulate`` is this package: :func:`run_campaign` is the one campaign driver
(:func:`layoutopt.decide.driver.run`) playing a policy against a world.
"""

from layoutopt.util.lazy import lazy_exports

# Public name -> the module that defines it, imported when the name is first read.
_EXPORTS = {
    "DEMO_SPACE_PATH": "layoutopt.sim.simulate",
    "HILL2017_CHECKPOINTS": "layoutopt.sim.simulate",
    "MetricWorld": "layoutopt.sim.metricworld",
    "CampaignRecord": "layoutopt.sim.simulate",
    "CampaignResult": "layoutopt.sim.simulate",
    "SegmentWorld": "layoutopt.sim.segments",
    "SyntheticWorld": "layoutopt.sim.simulate",
    "TimeWorld": "layoutopt.sim.timeworld",
    "WorldBest": "layoutopt.sim.simulate",
    "event_log": "layoutopt.sim.timeworld",
    "run_campaign": "layoutopt.sim.simulate",
    "served_clicks": "layoutopt.sim.timeworld",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "DEMO_SPACE_PATH",
    "HILL2017_CHECKPOINTS",
    "CampaignRecord",
    "CampaignResult",
    "MetricWorld",
    "SegmentWorld",
    "SyntheticWorld",
    "TimeWorld",
    "WorldBest",
    "event_log",
    "run_campaign",
    "served_clicks",
]
