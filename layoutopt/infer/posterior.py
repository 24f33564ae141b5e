"""The fitted posterior: draws of the model parameters plus diagnostics and the space."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import jax
import numpy as np
import xarray as xr

from layoutopt.model.core import Params, fold_segment
from layoutopt.model.priors import PriorConfig, attribute_design
from layoutopt.model.space import LayoutSpace
from layoutopt.util.io import atomic_path

__all__ = ["GaussianPosterior", "Posterior"]


class GaussianPosterior(NamedTuple):
    """A Gaussian posterior over the flat parameters, in a form the grid kernel evaluates.

    A Laplace posterior is ``theta ~ N(mode, Sigma)`` and eta is linear in theta, so a
    layout's eta is exactly ``N(m(x), v(x))``. With the prior covariance diagonal and the
    data entering through the N observed rows, ``Sigma = D - U U'`` (Woodbury), hence::

        m(x) = logits(mode, x)
        v(x) = logits(var, x) - sum_j logits(factor_j, x)^2

    where ``var`` holds the prior variances ``D`` as tables (``x' D x`` is a sum over the
    active entries; an attribute coefficient's variance is folded into its component's
    table with weight ``a_k(v)^2``) and ``factor_j`` the j-th column of U as tables. Segment
    terms fold like draws (:meth:`fold`).

    The tables are float64 (the subtraction in v cancels for well-observed layouts) and
    are scored in float64.

    Attributes:
        mode: :class:`Params` with a leading axis of length 1: the posterior mode.
        var: :class:`Params` with a leading axis of length 1: the prior variances D.
        factor: :class:`Params` with a leading axis of length r: U (one column per distinct
            observed layout, zero columns up to the fit's padded row count).
    """

    mode: Params
    var: Params
    factor: Params

    @property
    def rank(self) -> int:
        """Number of factor columns r."""
        return int(np.shape(self.factor.intercept)[0])

    def stacked(self, factor: bool = True) -> Params:
        """``[mode; var; factor]`` as one float64 :class:`Params` with 2 + r leading rows
        (``[mode; var]``, 2 rows, with ``factor=False``)."""
        parts = (self.mode, self.var, self.factor) if factor else (self.mode, self.var)
        return jax.tree.map(
            lambda *a: np.concatenate([np.asarray(x, np.float64) for x in a]), *parts
        )

    def fold(self, segment: int) -> GaussianPosterior:
        """The Gaussian of one segment (:func:`layoutopt.model.fold_segment`): the mode and
        the factor columns fold linearly; the variances fold by adding (independent terms)."""
        return GaussianPosterior(*(fold_segment(p, segment) for p in self))


@dataclass(frozen=True, eq=False, kw_only=True)
class Posterior:
    """Posterior draws of the additive + pairwise model.

    Attributes:
        space: the :class:`LayoutSpace` the model was fitted on (so scoring needs nothing else).
        prior: the :class:`PriorConfig` used.
        params: :class:`Params` whose arrays carry a leading draw axis of length S
            (chains are concatenated chain-major: draws of chain 0, then chain 1, ...).
        method: ``"laplace"``, ``"nuts"`` or ``"svi"``.
        num_chains: number of chains the S draws are split into (1 for laplace/svi).
        hyper: hyper-parameter draws or point values, e.g. ``{"sigma_main": (S, K),
            "tau_pair": (S, P)}``; ``"beta"`` ``(S, B)`` holds the variant-attribute
            coefficients when the space has attributes (``params.main`` then holds the
            composed main effects ``a_k(v) . beta_k + e_k[v]``).
        diagnostics: e.g. ``{"max_r_hat": ..., "min_ess": ..., "num_divergences": ...}`` for
            NUTS, ``{"converged": ..., "iterations": ...}`` for Laplace, ``{"final_loss": ...}``
            for SVI.
        observed_codes: ``(N, K)`` codes of the layouts the fit saw (may be empty).
        segment_shares: ``(G,)`` share of the observed impressions in each segment (the
            traffic mix that scoring with ``segment=None`` averages over); ``None`` when the
            space has no segments.
        gaussian: the Laplace Gaussian (:class:`GaussianPosterior`) that the draws were
            sampled from, for closed-form scoring; ``None`` for NUTS and SVI.
    """

    space: LayoutSpace
    prior: PriorConfig
    params: Params
    method: str
    num_chains: int = 1
    hyper: dict[str, np.ndarray] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    observed_codes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int32))
    segment_shares: np.ndarray | None = None
    gaussian: GaussianPosterior | None = None

    @property
    def num_draws(self) -> int:
        """Total number of posterior draws S (all chains)."""
        return int(np.shape(self.params.intercept)[0])

    def subsample(self, idx) -> Posterior:
        """The posterior with only the draws ``idx`` (positions along the draw axis).

        The Laplace Gaussian is kept: closed-form scores do not depend on the draws.
        """
        idx = np.asarray(idx)
        return dataclasses.replace(
            self, params=jax.tree.map(lambda a: np.asarray(a)[idx], self.params)
        )

    def mean_params(self) -> Params:
        """Posterior mean of every parameter (no draw axis)."""
        return jax.tree.map(lambda a: np.asarray(a).mean(axis=0), self.params)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the posterior as an ArviZ-compatible NetCDF (HDF5) file.

        Groups: ``posterior`` (dims ``chain``, ``draw``; variables ``intercept``,
        ``main__<component>`` with a dim named after the component, ``pair__<a>__<b>``,
        ``sigma_main``, ``tau_pair``), ``constant_data`` (``observed_codes``) and, for a
        Laplace fit, ``gaussian`` (``mode_<i>``, ``var_<i>``, ``factor_<i>``: the leaves of
        :class:`GaussianPosterior`'s tables in pytree order). Component
        names are made into safe identifiers where needed; the real component and variant
        labels are the coordinates. The space (JSON), prior, method, number of chains and
        diagnostics are attributes of the root group. The file is written to a temporary
        file in the same directory and moved into place, so a failure never leaves a
        half-written file at ``path``.

        Args:
            path: destination file (conventionally ``*.nc``).

        Raises:
            ValueError: if a draw is not finite (see :meth:`check_finite`); nothing is
                written.
            OSError: if the file cannot be written (the message names ``path``; an earlier
                file there is left as it was and no temporary file remains).

        Examples:
            >>> post.save("posterior.nc")  # doctest: +SKIP
            >>> import arviz; arviz.from_netcdf("posterior.nc")  # doctest: +SKIP
        """
        self.check_finite()
        root, posterior, constant = self._to_datasets()
        # Built in memory first: HDF5 reacts to a full disk or a size limit with a cascade
        # of errors (or a crash); a plain write of the finished bytes fails with one OSError,
        # which atomic_path turns into a message naming the target.
        buffer = io.BytesIO()
        root.to_netcdf(buffer, mode="w", engine="h5netcdf")
        groups = [("posterior", posterior), ("constant_data", constant)]
        if self.gaussian is not None:
            groups.append(("gaussian", _gaussian_dataset(self.gaussian)))
        for name, ds in groups:
            encoding = {v: {"_FillValue": None} for v in ds.data_vars}
            ds.to_netcdf(buffer, mode="a", group=name, engine="h5netcdf", encoding=encoding)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            fh.write(buffer.getbuffer())
            fh.flush()
            os.fsync(fh.fileno())

    def check_finite(self) -> None:
        """Refuse a posterior with NaN or infinite draws.

        Scores, picks and proposals computed from such draws are meaningless (a NaN mean is
        dropped from a ranking, a NaN draw never wins), so every consumer calls this first.

        Raises:
            ValueError: naming the first non-finite parameter and how many draws it spoils.
        """
        names = ["intercept"] + [f"main[{c}]" for c in self.space.components]
        names += [f"pair[{a} x {b}]" for a, b in itertools.combinations(self.space.components, 2)]
        leaves = [self.params.intercept, *self.params.main, *self.params.pair]
        for name, leaf in zip(names, leaves, strict=False):
            a = np.asarray(leaf)
            bad = ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1) if a.ndim else ~np.isfinite(a)
            if np.any(bad):
                raise ValueError(
                    f"the posterior ({self.method} fit) has non-finite values of {name} in "
                    f"{int(np.sum(bad))} of {self.num_draws} draws; it cannot be used: refit "
                    "(check the counts and prior scales, or use another method)"
                )

    @classmethod
    def load(cls, path: str | os.PathLike) -> Posterior:
        """Read a posterior written by :meth:`save`; arrays come back bit for bit.

        Args:
            path: a file written by :meth:`save`.

        Returns:
            The :class:`Posterior`.

        Raises:
            ValueError: naming the file, if it is missing, unreadable, or not a layoutopt
                posterior.

        Examples:
            >>> post = Posterior.load("posterior.nc")  # doctest: +SKIP
        """
        path = os.fspath(path)
        if os.path.isdir(path):
            raise ValueError(f"{path}: is a directory; give a posterior .nc file written by fit")
        if not os.path.isfile(path):
            raise ValueError(f"{path}: no such posterior file")
        try:
            # Plain HDF5 reads of the variables the attributes list: xarray's per-variable
            # dimension lookups took ~50 s for the 820 pair tables of a 40-component space.
            with h5py.File(path, "r") as fh:
                attrs = {k: _attr(v) for k, v in fh.attrs.items()}
                if attrs.get("layoutopt_format") != _FORMAT:
                    raise ValueError("not a layoutopt posterior (no layoutopt_format attribute)")
                names = json.loads(attrs["variables"])
                group = fh["posterior"]
                wanted = ["intercept", *names["main"], *names["pair"], *names["hyper"]]
                if "segment_main" in names:
                    wanted += ["segment_intercept", *names["segment_main"]]
                    wanted += names["segment_pair"]
                arrays = {v: np.asarray(group[v][()]) for v in wanted}
                codes = np.asarray(fh["constant_data"]["observed_codes"][()])
                gauss = None
                if "gaussian" in fh:
                    gauss = {k: np.asarray(v[()]) for k, v in fh["gaussian"].items()}
            space = LayoutSpace.from_dict(json.loads(attrs["space"]), source=path)
            prior = PriorConfig(**json.loads(attrs["prior"]))
            num_chains = int(attrs["num_chains"])
            diagnostics = json.loads(attrs["diagnostics"])

            def flat(a):
                return a.reshape((a.shape[0] * a.shape[1],) + a.shape[2:])

            params = Params(
                flat(arrays["intercept"]),
                tuple(flat(arrays[v]) for v in names["main"]),
                tuple(flat(arrays[v]) for v in names["pair"]),
            )
            shares = None
            if "segment_intercept" in arrays:
                params = params._replace(
                    segment_intercept=flat(arrays["segment_intercept"]),
                    segment_main=tuple(flat(arrays[v]) for v in names["segment_main"]),
                    segment_pair=tuple(flat(arrays[v]) for v in names["segment_pair"]),
                )
                shares = np.asarray(json.loads(attrs["segment_shares"]), np.float64)
            hyper = {k: flat(arrays[k]) for k in names["hyper"]}
            gaussian = None if gauss is None else _gaussian_of(gauss, params)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        except (OSError, KeyError, TypeError, json.JSONDecodeError) as err:
            raise ValueError(
                f"{path}: not a readable layoutopt posterior ({type(err).__name__}: {err})"
            ) from None
        return cls(
            space=space,
            prior=prior,
            params=params,
            method=str(attrs["method"]),
            num_chains=num_chains,
            hyper=hyper,
            diagnostics=diagnostics,
            observed_codes=codes,
            segment_shares=shares,
            gaussian=gaussian,
        )

    def to_bytes(self) -> bytes:
        """The file :meth:`save` writes, as bytes (how a campaign store keeps a fit)."""
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / "posterior.nc"
            self.save(file)
            return file.read_bytes()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Posterior:
        """The posterior of :meth:`to_bytes`'s bytes (as :meth:`load` reads the file)."""
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / "posterior.nc"
            file.write_bytes(blob)
            return cls.load(file)

    def _to_datasets(self):
        space, C = self.space, int(self.num_chains)
        S = self.num_draws
        if S % C:
            raise ValueError(f"{S} draws cannot be split into {C} equal chains")
        dims = _safe_names(space.components)

        def chains(a):
            a = np.asarray(a)
            return a.reshape((C, S // C) + a.shape[1:])

        coords: dict[str, Any] = {"chain": np.arange(C), "draw": np.arange(S // C)}
        for dim, labels in zip(dims, space.variants, strict=True):
            coords[dim] = np.array(labels, dtype=object)
        data = {"intercept": (("chain", "draw"), chains(self.params.intercept))}
        names = {"main": [], "pair": [], "hyper": []}
        for k, dim in enumerate(dims):
            name = f"main__{dim}"
            data[name] = (("chain", "draw", dim), chains(self.params.main[k]))
            names["main"].append(name)
        pairs = list(itertools.combinations(range(space.num_components), 2))
        for (k, j), table in zip(pairs, self.params.pair, strict=False):
            name = f"pair__{dims[k]}__{dims[j]}"
            data[name] = (("chain", "draw", dims[k], dims[j]), chains(table))
            names["pair"].append(name)
        if self.params.segment_intercept is not None:
            _segment_variables(self, dims, chains, data, coords, names)
        for key, value in self.hyper.items():
            value = np.asarray(value)
            if key == "sigma_main":
                hyper_dims = ("component",)
                coords["component"] = np.array(space.components, dtype=object)
            elif key == "tau_pair":
                hyper_dims = ("pair",)
                coords["pair"] = np.array(
                    [f"{space.components[k]} x {space.components[j]}" for k, j in pairs][
                        : value.shape[-1]
                    ],
                    dtype=object,
                )
            elif key == "beta":
                # Attribute coefficients, named "<component>:<column>" (see priors.py).

                hyper_dims = ("attribute",)
                coords["attribute"] = np.array(attribute_design(space)[1], dtype=object)
            else:
                hyper_dims = tuple(f"{key}_dim_{i}" for i in range(value.ndim - 1))
            data[key] = (("chain", "draw") + hyper_dims, chains(value))
            names["hyper"].append(key)
        posterior = xr.Dataset(data, coords=coords)
        posterior.attrs["inference_library"] = "layoutopt"
        posterior.attrs["method"] = self.method
        codes = np.asarray(self.observed_codes, dtype=np.int32)
        constant = xr.Dataset(
            {"observed_codes": (("observed_layout", "layout_component"), codes)},
            coords={"layout_component": np.array(space.components, dtype=object)[: codes.shape[1]]},
        )
        root = xr.Dataset(
            attrs={
                "layoutopt_format": _FORMAT,
                "space": json.dumps(space.to_dict()),
                "prior": json.dumps(dataclasses.asdict(self.prior)),
                "method": self.method,
                "num_chains": C,
                "diagnostics": json.dumps(_plain(self.diagnostics)),
                "variables": json.dumps(names),
            }
        )
        if self.segment_shares is not None:
            root.attrs["segment_shares"] = json.dumps(np.asarray(self.segment_shares).tolist())
        return root, posterior, constant


_FORMAT = "layoutopt.infer.posterior/1"


def _gaussian_dataset(gauss: GaussianPosterior) -> xr.Dataset:
    """The ``gaussian`` group: every table leaf as ``<part>_<i>`` with generic dims."""
    data = {}
    for part, tree in zip(GaussianPosterior._fields, gauss, strict=True):
        for i, leaf in enumerate(jax.tree.leaves(tree)):
            a = np.asarray(leaf, np.float64)
            data[f"{part}_{i}"] = (tuple(f"{part}_{i}_dim_{d}" for d in range(a.ndim)), a)
    return xr.Dataset(data)


def _gaussian_of(arrays: dict, params: Params) -> GaussianPosterior:
    """Rebuild a :class:`GaussianPosterior` from its group, shaped like ``params``."""
    treedef = jax.tree.structure(params)
    n = treedef.num_leaves
    parts = [
        jax.tree.unflatten(treedef, [arrays[f"{part}_{i}"] for i in range(n)])
        for part in GaussianPosterior._fields
    ]
    return GaussianPosterior(*parts)


def _segment_variables(post: Posterior, dims, chains, data, coords, names) -> None:
    """Add the segment terms to the posterior group: ``segment_intercept`` (dim
    ``segment``, labelled like ``"member=prime"``), ``segment_main__<component>`` and
    ``segment_pair__<a>__<b>``."""
    space, params = post.space, post.params
    coords["segment"] = np.array(
        [space.segment_label(g) for g in range(space.num_segments)], dtype=object
    )
    data["segment_intercept"] = (("chain", "draw", "segment"), chains(params.segment_intercept))
    names["segment_main"], names["segment_pair"] = [], []
    for k, dim in enumerate(dims):
        name = f"segment_main__{dim}"
        data[name] = (("chain", "draw", "segment", dim), chains(params.segment_main[k]))
        names["segment_main"].append(name)
    pairs = itertools.combinations(range(space.num_components), 2)
    for (k, j), table in zip(pairs, params.segment_pair, strict=False):
        name = f"segment_pair__{dims[k]}__{dims[j]}"
        data[name] = (("chain", "draw", "segment", dims[k], dims[j]), chains(table))
        names["segment_pair"].append(name)


def _safe_names(components) -> list[str]:
    """Unique NetCDF-safe identifiers for component names (labels stay in coordinates)."""
    reserved = {"chain", "draw", "component", "pair", "observed_layout", "layout_component"}
    reserved |= {"intercept", "sigma_main", "tau_pair", "observed_codes", "segment"}
    reserved |= {"attribute", "beta"}  # variant-attribute coefficients (hyper["beta"])
    out: list[str] = []
    for k, name in enumerate(components):
        safe = re.sub(r"[^0-9A-Za-z_]", "_", name)
        if not safe or not (safe[0].isalpha() or safe[0] == "_"):
            safe = "c_" + safe
        if safe in reserved or safe in out or "__" in safe:
            safe = f"{safe.replace('__', '_')}_{k}"
        out.append(safe)
    return out


def _attr(value):
    """An HDF5 attribute as a plain value (strings may come back as bytes)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value


def _plain(obj):
    """JSON-ready copy of diagnostics (numpy scalars and arrays to Python values)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
