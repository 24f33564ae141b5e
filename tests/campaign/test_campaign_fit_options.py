"""Campaign.fit takes prior= and options= like lo.fit; propose's refit reuses them; the CLI's
``campaign fit --additive``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import layoutopt as lo
from layoutopt.cli.app import main
from layoutopt.util.seeds import split_seed

SPACE = lo.LayoutSpace({"headline": ["h1", "h2", "h3"], "image": ["a", "b"]})


def _results(seed: int, rows: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = SPACE.frame(SPACE.codes(np.arange(rows)))
    frame["impressions"] = 500
    frame["clicks"] = rng.binomial(500, 0.08, rows)
    return frame


def test_campaign_fit_takes_prior_and_options_like_lo_fit(tmp_path):
    additive = lo.PriorConfig(pairwise=False, main_scale=0.5)
    options = lo.LaplaceOptions(tol=1e-4, scales="per_group")
    with lo.Campaign.create(tmp_path / "c.db", SPACE) as camp:
        camp.ingest(_results(0))
        post = camp.fit(seed=3, num_samples=40, prior=additive, options=options)
        direct = lo.fit(
            SPACE,
            camp.observations(),
            seed=split_seed(3, 2)[0],
            num_samples=40,
            prior=additive,
            options=options,
        )
        np.testing.assert_array_equal(post.params.intercept, direct.params.intercept)
        assert post.params.pair == () and post.prior.main_scale == 0.5
        assert post.prior.base_rate == pytest.approx(direct.prior.base_rate)
        recorded = camp.store.fits(camp.campaign_id)[-1]["options"]
        assert recorded["prior"]["PriorConfig"]["pairwise"] is False
        assert recorded["fit_options"] == {"type": "LaplaceOptions", "fields": vars(options)}
        # new data: propose refits with the same prior and options (recorded again)
        camp.ingest(_results(1))
        proposal = camp.propose(k=2, seed=0)
        assert proposal.refit.startswith("fitted laplace first")
        assert camp.posterior().params.pair == ()
        assert (
            camp.store.fits(camp.campaign_id)[-1]["options"]["fit_options"]
            == recorded["fit_options"]
        )
        with pytest.raises(ValueError, match="prior must be a PriorConfig, a MetaPrior or None"):
            camp.fit(seed=0, prior={"pairwise": False})
        with pytest.raises(ValueError, match="takes options=LaplaceOptions"):
            camp.fit(seed=0, options=lo.NutsOptions())


def test_cli_campaign_fit_additive(tmp_path, capsys):
    (tmp_path / "space.toml").write_text(SPACE.to_toml())
    _results(0).to_csv(tmp_path / "r.csv", index=False)
    db = str(tmp_path / "c.db")
    assert main(["campaign", "init", "--db", db, "-s", str(tmp_path / "space.toml")]) == 0
    assert main(["campaign", "ingest", "--db", db, str(tmp_path / "r.csv")]) == 0
    assert main(["campaign", "fit", "--db", db, "--additive"]) == 0
    with lo.Campaign.open(db) as camp:
        assert camp.posterior().params.pair == () and not camp.posterior().prior.pairwise
    out = str(tmp_path / "p.nc")
    fit_argv = ["fit", "-s", str(tmp_path / "space.toml"), "-d", str(tmp_path / "r.csv")]
    assert main([*fit_argv, "-o", out, "--additive"]) == 0
    assert lo.Posterior.load(out).params.pair == ()
