"""Honest options: no setting silently resets another, every options type a message names is
exported, ``delay="auto"`` without a measurable delay says so, ``score_layouts`` needs no
positional None."""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import layoutopt as lo
from layoutopt.infer import default_prior
from layoutopt.infer.options import OPTIONS

PACKAGE = Path(lo.__file__).parent
# A type named in a message: "LaplaceOptions(...)", "a PriorConfig", "MetaPrior.learn".
NAMED_TYPE = re.compile(r"\b([A-Z][A-Za-z]*(?:Options|Config|Prior|Rule|Warning))\b")


def _pooled(obs) -> float:
    return float(np.sum(obs.clicks) / np.sum(obs.impressions))


def test_a_prior_setting_keeps_every_other_field(tiny_space, tiny_obs):
    additive = lo.fit(tiny_space, tiny_obs, prior=lo.PriorConfig(pairwise=False), num_samples=20)
    default = lo.fit(tiny_space, tiny_obs, num_samples=20)
    assert additive.prior == lo.PriorConfig(base_rate=_pooled(tiny_obs), pairwise=False)
    assert default.prior == lo.PriorConfig(base_rate=_pooled(tiny_obs))
    assert additive.params.pair == () and len(default.params.pair) == 3
    probit = default_prior(tiny_obs, lo.PriorConfig(link="probit", main_scale=0.3))
    assert (probit.link, probit.main_scale) == ("probit", 0.3)
    assert probit.base_rate == pytest.approx(_pooled(tiny_obs))
    given = lo.PriorConfig(base_rate=0.2, pairwise=False)
    assert default_prior(tiny_obs, given) is given  # a base rate given is never replaced


def test_a_meta_prior_without_an_intercept_takes_the_datas_base_rate(tiny_space, tiny_obs):
    meta = lo.MetaPrior({"main:headline": (0.0, 0.04)})
    assert meta.config().base_rate is None
    post = lo.fit(tiny_space, tiny_obs, prior=meta, num_samples=20)
    assert post.prior.base_rate == pytest.approx(_pooled(tiny_obs))
    # the intercept's prior mean is the data's rate, not 5%: b0 lands near logit(pooled)
    b0 = float(np.mean(post.params.intercept))
    assert abs(b0 - np.log(_pooled(tiny_obs) / (1 - _pooled(tiny_obs)))) < 0.5


def _message_types() -> set[str]:
    """Every options/warning type named in the package's string literals (messages, and the
    parts they are built from; docstrings left out)."""
    names = set()
    for file in PACKAGE.rglob("*.py"):
        tree = ast.parse(file.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) not in docstrings and not node.value.isidentifier():
                    names |= set(NAMED_TYPE.findall(node.value))
    return names


def test_every_options_type_a_message_names_is_exported_at_the_top_level():
    named = _message_types()
    assert {"LaplaceOptions", "PriorConfig", "MetaPrior"} <= named  # the scan sees them
    missing = sorted(n for n in named if n not in lo.__all__)
    assert not missing, f"named in messages but not exported from layoutopt: {missing}"
    # fit's "method 'nuts' takes options=NutsOptions(...)" names the type of OPTIONS[method]
    for kind in OPTIONS.values():
        assert getattr(lo, kind.__name__) is kind
    for name in ("StopRule", "DelayWarning", "ExtraColumnsWarning", "FitWarning"):
        assert name in lo.__all__ and getattr(lo, name).__name__ == name


def _log(delay_minutes: float) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 600
    served = pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.uniform(0, 40, n), unit="h")
    clicked = rng.random(n) < 0.2
    return pd.DataFrame(
        {
            "headline": rng.choice(["h1", "h2", "h3"], n),
            "hero image": rng.choice(["cat photo", "dog/photo"], n),
            "reviews": rng.choice(["none", "stars", "quote"], n),
            "served_at": served,
            "clicked_at": (served + pd.Timedelta(minutes=delay_minutes)).where(clicked),
        }
    )


def test_auto_delay_on_clicks_stamped_with_their_impression_says_so_and_fits_none(tiny_space):
    now = pd.Timestamp("2026-01-03")
    zero = lo.Observations.from_events(_log(0.0), tiny_space, now)
    assert zero.has_delays  # click times exist, but none is a minute or more after serving
    with pytest.warns(lo.DelayWarning, match="less than a minute.*fitting without a delay"):
        auto = lo.fit(tiny_space, zero, delay="auto", num_samples=20)
    plain = lo.fit(tiny_space, zero, num_samples=20)
    np.testing.assert_array_equal(auto.params.intercept, plain.params.intercept)
    assert "delay" not in auto.diagnostics
    # a measurable delay is still learned, without a warning
    late = lo.Observations.from_events(_log(90.0), tiny_space, now)
    with warnings.catch_warnings():
        warnings.simplefilter("error", lo.DelayWarning)
        learned = lo.fit(tiny_space, late, delay="auto", num_samples=20)
    assert "(estimated)" in learned.diagnostics["delay"]


def test_score_layouts_takes_the_layouts_second_and_still_reads_the_old_order(tiny_space, tiny_obs):
    post = lo.fit(tiny_space, tiny_obs, num_samples=50)
    frame = tiny_space.frame(tiny_space.codes(np.arange(5)))
    new = lo.score_layouts(post, frame, level=0.8, seed=0)
    for old in (
        lo.score_layouts(post, None, frame, 0.8, seed=0),
        lo.score_layouts(post, tiny_space, frame, level=0.8, seed=0),
        lo.score_layouts(post, frame, level=0.8, space=tiny_space, seed=0),
    ):
        pd.testing.assert_frame_equal(new, old)
    with pytest.raises(ValueError, match="pass level= and space= by name"):
        lo.score_layouts(post, frame, 0.8)
