"""Posterior.save / Posterior.load: exact round trip, ArviZ compatibility, atomic writes."""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest

from layoutopt.infer.posterior import Posterior


def assert_same(a: Posterior, b: Posterior) -> None:
    assert a.space == b.space and a.prior == b.prior
    assert (a.method, a.num_chains) == (b.method, b.num_chains)
    assert a.diagnostics == b.diagnostics
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)  # bitwise: NaN-free float32 draws
    assert a.hyper.keys() == b.hyper.keys()
    for k in a.hyper:
        np.testing.assert_array_equal(a.hyper[k], b.hyper[k])
    np.testing.assert_array_equal(a.observed_codes, b.observed_codes)
    assert a.observed_codes.dtype == b.observed_codes.dtype


@pytest.mark.slow
@pytest.mark.parametrize("method", ["laplace", "nuts"])
def test_round_trip_is_exact(tiny_fits, tmp_path, method):
    post = tiny_fits(method)
    path = tmp_path / "post.nc"
    post.save(path)
    assert_same(post, Posterior.load(path))
    assert os.listdir(tmp_path) == ["post.nc"]
    # An ordinary file for the user's umask (a mkstemp temp file would stay 0600).
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_round_trip_additive_model_and_odd_names(tmp_path):
    from layoutopt.data.observations import Observations
    from layoutopt.infer.fitting import fit
    from layoutopt.model.priors import PriorConfig
    from layoutopt.model.space import LayoutSpace

    space = LayoutSpace({"chain": ["a b", "ü/€"], "x__y": ["1", "2", "3"], "9 lives": ["-", "+"]})
    codes = space.codes(np.arange(space.size))
    obs = Observations.from_codes(space, codes, np.full(len(codes), 500), np.arange(len(codes)))
    post = fit(space, obs, prior=PriorConfig(pairwise=False), num_samples=30)
    post.save(tmp_path / "odd.nc")
    back = Posterior.load(tmp_path / "odd.nc")
    assert_same(post, back)
    assert back.space.variants[0] == ("a b", "ü/€")


# a NUTS fit with two chains (the chain dimension is what ArviZ must read): slow set
@pytest.mark.slow
def test_arviz_reads_posterior_group(tiny_fits, tmp_path):
    import arviz as az

    post = tiny_fits("nuts")
    path = tmp_path / "post.nc"
    post.save(path)
    data = az.from_netcdf(path)
    # arviz 0.x returns InferenceData (attribute groups); 1.x a DataTree (item groups).
    group = data.posterior if hasattr(data, "posterior") else data["posterior"]
    assert dict(group.sizes)["chain"] == 2 and dict(group.sizes)["draw"] == 200
    np.testing.assert_array_equal(
        np.asarray(group["main__headline"]).reshape(400, 3), post.params.main[0]
    )
    assert list(np.asarray(group["hero_image"])) == ["cat photo", "dog/photo"]
    summary = az.summary(data, var_names=["intercept"], kind="diagnostics")
    assert summary.shape[0] == 1


def test_failed_write_leaves_nothing(tiny_fits, tmp_path, monkeypatch):
    import xarray as xr

    post = tiny_fits("laplace")
    target = tmp_path / "post.nc"
    real = xr.Dataset.to_netcdf
    calls = []

    def flaky(self, *args, **kwargs):
        calls.append(kwargs.get("group"))
        if kwargs.get("group") == "constant_data":
            raise OSError("disk full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(xr.Dataset, "to_netcdf", flaky)
    with pytest.raises(OSError, match="disk full"):
        post.save(target)
    assert calls[-1] == "constant_data"
    assert os.listdir(tmp_path) == []
    # An existing file survives a failed overwrite untouched.
    monkeypatch.setattr(xr.Dataset, "to_netcdf", real)
    post.save(target)
    before = target.read_bytes()
    monkeypatch.setattr(xr.Dataset, "to_netcdf", flaky)
    with pytest.raises(OSError):
        post.save(target)
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["post.nc"]


def _plain_netcdf(path):
    import xarray as xr

    xr.Dataset({"x": ("t", np.arange(3.0))}).to_netcdf(path, engine="h5netcdf")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (None, "no such posterior file"),
        (lambda p: p.write_bytes(b"not a netcdf file"), "not a readable layoutopt posterior"),
        (lambda p: p.write_bytes(b""), "not a readable layoutopt posterior"),
        (_plain_netcdf, "not a layoutopt posterior"),
    ],
    ids=["missing", "garbage", "empty", "foreign-netcdf"],
)
def test_bad_files_raise_value_error(tmp_path, make, match):
    path = tmp_path / "bad.nc"
    if make is not None:
        make(path)
    with pytest.raises(ValueError, match=match) as err:
        Posterior.load(path)
    assert str(path) in str(err.value)


def test_truncated_file_raises_value_error(tiny_fits, tmp_path):
    path = tmp_path / "post.nc"
    tiny_fits("laplace").save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=str(path)):
        Posterior.load(path)
