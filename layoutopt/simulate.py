"""Synthetic ground-truth worlds and a campaign runner that measures regret.

A :class:`SyntheticWorld` is the additive + pairwise model with *known* parameters::

    ctr(x) = inv_link(b0 + sum_k m_k[x_k] + sum_{k<l} p_kl[x_k, x_l])

computed by the same :func:`layoutopt.model.logits` the fitted model uses, so the simulator
and the model can never disagree about what a parameter means.

:func:`run_campaign` plays rounds of *propose -> serve -> observe -> refit* against a world
and records, per round, the **local regret** (mean regret of the impressions served in the
round) and the **simple regret** of the layout the method would ship now. The baselines of
Hill et al. (2017) run in the same loop: ``strategy="uniform"`` (a classic A/B/n test),
``strategy="independent"`` (Beta-Bernoulli Thompson sampling with one arm per layout, their
"N^D-MAB") and ``model="additive"`` (their "MVT1", no interaction terms).

References:
    Hill, Nassif, Liu, Iyer and Vishwanathan, "An Efficient Bandit Algorithm for Realtime
    Multivariate Optimization", KDD 2017.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from layoutopt.data import Observations
from layoutopt.model import LINKS, Params, PriorConfig, inv_link, logits, pair_list
from layoutopt.space import LayoutSpace

__all__ = [
    "SyntheticWorld",
    "WorldBest",
    "CampaignResult",
    "run_campaign",
    "HILL2017_CHECKPOINTS",
    "SegmentWorld",
    "run_segment_campaign",
]

#: Impression counts at which Hill et al. (2017) read their regret curves, and we report.
HILL2017_CHECKPOINTS = (10_000, 20_000, 40_000, 60_000, 100_000)

# Spaces up to this many layouts keep a full table of true CTRs and are solved by enumeration.
_ENUMERATE_LIMIT = 1 << 22
# Spaces up to this many allowed layouts are fitted on *every* allowed layout (untested ones
# with zero impressions), so the observation arrays never change shape during a campaign.
_FULL_PADDING_LIMIT = 4096
_MIN_CAPACITY = 64

MODEL_STRATEGIES = ("thompson", "top_two", "greedy", "ucb")
BASELINE_STRATEGIES = ("uniform", "independent")
MODELS = ("pairwise", "additive")
INITIAL_DESIGNS = ("pairwise", "random", "full", "uniform")
ALLOCATIONS = ("multinomial", "round")


@functools.partial(jax.jit, static_argnames="link")
def _ctr_kernel(params: Params, codes: jax.Array, link: str) -> jax.Array:
    return inv_link(logits(params, codes), link)


def _bucket(n: int, minimum: int = _MIN_CAPACITY) -> int:
    """Smallest power of two >= max(n, minimum): few distinct shapes, so few compilations."""
    return max(minimum, 1 << max(0, math.ceil(math.log2(max(n, 1)))))


class WorldBest(NamedTuple):
    """The true best allowed layout of a world.

    Attributes:
        codes: ``(K,)`` int32 variant codes.
        index: mixed-radix index (Python int).
        ctr: its true click-through rate.
        layout: ``{component: variant label}``.
    """

    codes: np.ndarray
    index: int
    ctr: float
    layout: dict[str, str]


@dataclass(frozen=True, eq=False)
class SyntheticWorld:
    """A ground-truth world: the additive + pairwise model with known parameters.

    Args:
        space: the :class:`~layoutopt.space.LayoutSpace`.
        params: true, unbatched :class:`~layoutopt.model.Params` (pairwise tables may be
            empty for an additive world).
        link: ``"logit"`` or ``"probit"``.

    Examples:
        >>> space = LayoutSpace({"a": ["a0", "a1"], "b": ["b0", "b1", "b2"]})
        >>> world = SyntheticWorld.random(space, seed=0, base_rate=0.05)
        >>> world.ctr(np.array([[0, 1]])).shape
        (1,)
        >>> clicks = world.serve(np.array([[0, 1]]), np.array([1000]), seed=1)

    References:
        Hill et al., "An Efficient Bandit Algorithm for Realtime Multivariate Optimization",
        KDD 2017 (Section 5 simulates worlds of exactly this form with a probit link).
    """

    space: LayoutSpace
    params: Params
    link: str = "logit"
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if self.link not in LINKS:
            raise ValueError(f"link must be one of {LINKS}, got {self.link!r}")
        card = self.space.cardinalities
        K = len(card)
        if len(self.params.main) != K:
            raise ValueError(
                f"params have {len(self.params.main)} main-effect tables, the space has {K} "
                "components"
            )
        for k, m in enumerate(self.params.main):
            if np.shape(m) != (card[k],):
                raise ValueError(
                    f"params.main[{k}] has shape {np.shape(m)}; component "
                    f"{self.space.components[k]!r} needs ({card[k]},)"
                )
        if self.params.pair:
            pairs = pair_list(K)
            if len(self.params.pair) != len(pairs):
                raise ValueError(
                    f"params have {len(self.params.pair)} pair tables, expected {len(pairs)}"
                )
            for (k, j), p in zip(pairs, self.params.pair, strict=True):
                if np.shape(p) != (card[k], card[j]):
                    raise ValueError(
                        f"pair table for ({self.space.components[k]!r}, "
                        f"{self.space.components[j]!r}) has shape {np.shape(p)}, expected "
                        f"({card[k]}, {card[j]})"
                    )
        if np.shape(self.params.intercept) != ():
            raise ValueError("params must be unbatched (a scalar intercept)")
        # Store as float32 device arrays once: every later call then reuses one compilation.
        object.__setattr__(
            self, "params", jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), self.params)
        )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def random(
        cls,
        space: LayoutSpace,
        seed: int,
        base_rate: float = 0.05,
        main_scale: float = 0.3,
        pair_scale: float = 0.15,
        link: str = "logit",
        pairwise: bool = True,
    ) -> SyntheticWorld:
        """Draw a world: ``m_k[v] ~ Normal(0, main_scale)``, ``p_kl[v, w] ~ Normal(0, pair_scale)``.

        The intercept is ``link(base_rate)``, so ``base_rate`` is the CTR of a layout whose
        effects are all zero (roughly the median CTR of the space).

        Args:
            space: the layout space.
            seed: integer seed (NumPy ``default_rng``).
            base_rate: CTR at zero effects, in (0, 1).
            main_scale: sd of every main effect, on the link scale.
            pair_scale: sd of every pairwise interaction effect, on the link scale.
            link: ``"logit"`` or ``"probit"``.
            pairwise: draw interaction terms (``False`` gives an additive world).

        Returns:
            The :class:`SyntheticWorld`.
        """
        if not 0.0 < base_rate < 1.0:
            raise ValueError(f"base_rate must lie in (0, 1), got {base_rate}")
        if main_scale < 0 or pair_scale < 0:
            raise ValueError("main_scale and pair_scale must be non-negative")
        rng = np.random.default_rng(seed)
        card = space.cardinalities
        intercept = PriorConfig(base_rate=base_rate, link=link).intercept_loc
        main = tuple(rng.normal(0.0, main_scale, n) for n in card)
        pair = (
            tuple(rng.normal(0.0, pair_scale, (card[k], card[j])) for k, j in pair_list(len(card)))
            if pairwise
            else ()
        )
        return cls(space, Params(np.asarray(intercept), main, pair), link)

    @classmethod
    def hill2017(cls, seed: int) -> SyntheticWorld:
        """The simulation world of Hill et al. (2017): 3 widgets x 8 variants = 512 layouts.

        Probit link with strong pairwise interactions. The paper reports true success rates
        spread over about 0.045-0.24; we calibrated the generating scales to match:
        ``base_rate=0.115`` (probit intercept ``ndtri(0.115) = -1.20``), ``main_scale=0.06``,
        ``pair_scale=0.08`` (interactions *larger* than main effects). Over 300 worlds the mean
        minimum CTR is 0.046 (10-90%: 0.036-0.055) and the mean maximum 0.240 (0.211-0.274);
        ``tests/test_simulate.py`` re-checks this.

        Args:
            seed: integer seed of the world.

        Returns:
            The :class:`SyntheticWorld`.

        References:
            Hill et al., "An Efficient Bandit Algorithm for Realtime Multivariate
            Optimization", KDD 2017, Section 5.1.
        """
        space = LayoutSpace(
            {f"widget{d + 1}": [f"w{d + 1}v{v}" for v in range(8)] for d in range(3)}
        )
        return cls.random(
            space, seed, base_rate=0.115, main_scale=0.06, pair_scale=0.08, link="probit"
        )

    # ------------------------------------------------------------------ ground truth
    def ctr(self, codes) -> np.ndarray:
        """True click-through rate of layouts.

        Args:
            codes: ``(n, K)`` integer variant codes (allowed or not).

        Returns:
            ``(n,)`` float64 CTRs, ``inv_link(logits(params, codes))``.
        """
        codes = np.asarray(codes, dtype=np.int32)
        if codes.ndim != 2 or codes.shape[1] != self.space.num_components:
            raise ValueError(
                f"codes must have shape (n, {self.space.num_components}), got {codes.shape}"
            )
        n = codes.shape[0]
        # Pad to a power-of-two bucket so varying n costs O(log n) compilations, not O(n).
        cap = _bucket(n, minimum=16)
        padded = np.zeros((cap, codes.shape[1]), dtype=np.int32)
        padded[:n] = codes
        out = _ctr_kernel(self.params, jnp.asarray(padded), self.link)
        return np.asarray(out, dtype=np.float64)[:n]

    def _table(self) -> np.ndarray:
        """True CTR of every layout by index (NaN where forbidden); small spaces only."""
        if "table" not in self._cache:
            if self.space.size > _ENUMERATE_LIMIT:
                raise ValueError(
                    f"space of {self.space.size} layouts is too large for a CTR table "
                    f"(limit {_ENUMERATE_LIMIT})"
                )
            chunks = []
            for _, codes in self.space.iter_chunks(65536, allowed_only=False):
                c = self.ctr(codes)
                c[~self.space.allowed_mask(codes)] = np.nan
                chunks.append(c)
            self._cache["table"] = np.concatenate(chunks)
        return self._cache["table"]

    def ctr_of_index(self, indices) -> np.ndarray:
        """True CTR of layouts given by mixed-radix indices (table look-up when small)."""
        idx = np.asarray(indices, dtype=np.int64)
        if self.space.size <= _ENUMERATE_LIMIT:
            return self._table()[idx]
        return self.ctr(self.space.codes(idx))

    def best(self) -> WorldBest:
        """The true best allowed layout.

        Exact by enumeration for spaces up to 2^22 layouts; beyond that by the exact
        optimiser :func:`layoutopt.optimize.argmax_codes` (``method="exact"``).

        Returns:
            :class:`WorldBest` with codes, index, ctr and layout.
        """
        if "best" not in self._cache:
            if self.space.size <= _ENUMERATE_LIMIT:
                table = self._table()
                i = int(np.nanargmax(table))
                codes = self.space.codes_of(i)
            else:
                from layoutopt.optimize import argmax_codes

                batched = jax.tree.map(lambda a: a[None], self.params)
                found = np.asarray(argmax_codes(batched, self.space, method="exact"))[0]
                codes = tuple(int(c) for c in found)
                i = sum(c * s for c, s in zip(codes, self.space.strides, strict=True))
            codes_arr = np.asarray(codes, dtype=np.int32)
            self._cache["best"] = WorldBest(
                codes_arr, i, float(self.ctr(codes_arr[None])[0]), self.space.decode(codes_arr)
            )
        return self._cache["best"]

    def serve(self, codes, impressions, seed=None, rng: np.random.Generator | None = None):
        """Serve impressions and draw clicks ``~ Binomial(impressions, ctr)``.

        Args:
            codes: ``(n, K)`` variant codes.
            impressions: ``(n,)`` non-negative integer impressions per layout.
            seed: integer seed (used when ``rng`` is not given).
            rng: a NumPy ``Generator``; takes precedence over ``seed``.

        Returns:
            ``(n,)`` int64 clicks.
        """
        if rng is None:
            if seed is None:
                raise ValueError("serve needs a seed or an rng: randomness is always explicit")
            rng = np.random.default_rng(seed)
        impressions = np.asarray(impressions)
        if np.any(impressions < 0):
            raise ValueError("impressions must be non-negative")
        p = self.ctr(codes)
        if impressions.shape != p.shape:
            raise ValueError(f"impressions need shape {p.shape}, got {impressions.shape}")
        return rng.binomial(impressions.astype(np.int64), p).astype(np.int64)


# ======================================================================= campaigns
@dataclass(frozen=True)
class CampaignResult:
    """Per-round record of one campaign.

    Attributes:
        strategy: the strategy name.
        model: ``"pairwise"``, ``"additive"`` or ``"none"`` (baselines without a model).
        impressions: ``(R,)`` cumulative impressions after each round.
        local_regret: ``(R,)`` mean regret of the impressions served in each round,
            ``sum_i n_i (ctr* - ctr_i) / sum_i n_i``.
        simple_regret: ``(R,)`` ``ctr* - ctr(pick)`` of the layout the method would ship
            after each round (``best_layout`` for the models; the empirical winner for
            ``uniform``; the most-served arm for ``independent``).
        pick_index: ``(R,)`` index of that pick.
        pick_tested: ``(R,)`` whether the pick had been served before.
        num_tested: ``(R,)`` distinct layouts served so far.
        seconds: ``(R,)`` wall time of each round (propose + serve + refit).
        best_ctr: the world's true best CTR ``ctr*``.
        clicks: ``(R,)`` cumulative clicks.
        fit_converged: ``(R,)`` whether the round's fit reported convergence (always True
            for the baselines, which fit no model).
    """

    strategy: str
    model: str
    impressions: np.ndarray
    local_regret: np.ndarray
    simple_regret: np.ndarray
    pick_index: np.ndarray
    pick_tested: np.ndarray
    num_tested: np.ndarray
    seconds: np.ndarray
    best_ctr: float
    clicks: np.ndarray
    fit_converged: np.ndarray

    @property
    def name(self) -> str:
        """Short label, e.g. ``"pairwise/thompson"`` or ``"uniform"``."""
        return self.strategy if self.model == "none" else f"{self.model}/{self.strategy}"

    def to_pandas(self):
        """One row per round: round, impressions, clicks, local/simple regret, pick, timing."""
        import pandas as pd

        return pd.DataFrame(
            {
                "round": np.arange(len(self.impressions)),
                "impressions": self.impressions,
                "clicks": self.clicks,
                "local_regret": self.local_regret,
                "simple_regret": self.simple_regret,
                "pick_index": self.pick_index,
                "pick_tested": self.pick_tested,
                "num_tested": self.num_tested,
                "seconds": self.seconds,
                "fit_converged": self.fit_converged,
            }
        )

    def summary(self, checkpoints: Sequence[int] = HILL2017_CHECKPOINTS):
        """Regret at impression checkpoints (the first round reaching each checkpoint).

        Returns:
            DataFrame indexed by checkpoint with ``local_regret``, ``simple_regret`` and
            ``cumulative_regret`` (mean regret per impression served so far).
        """
        import pandas as pd

        imp = self.impressions
        per_round = np.diff(np.concatenate([[0], imp]))
        cum = np.cumsum(per_round * self.local_regret) / np.maximum(imp, 1)
        rows = []
        for c in checkpoints:
            r = int(np.searchsorted(imp, c))
            if r >= len(imp):
                continue
            rows.append(
                {
                    "impressions": int(c),
                    "local_regret": float(self.local_regret[r]),
                    "simple_regret": float(self.simple_regret[r]),
                    "cumulative_regret": float(cum[r]),
                }
            )
        return pd.DataFrame(rows).set_index("impressions") if rows else pd.DataFrame()


def _allocate(weights: np.ndarray, total: int, how: str, rng: np.random.Generator) -> np.ndarray:
    """Split ``total`` impressions by ``weights``: multinomial, or largest-remainder rounding."""
    w = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    w = w / w.sum()
    if how == "multinomial":
        return rng.multinomial(total, w).astype(np.int64)
    raw = w * total
    n = np.floor(raw).astype(np.int64)
    short = total - int(n.sum())
    if short:
        n[np.argsort(-(raw - n), kind="stable")[:short]] += 1
    return n


class _Ledger:
    """Accumulated impressions and clicks per distinct served layout (host-side, by index)."""

    def __init__(self, space: LayoutSpace):
        self.space = space
        self.row: dict[int, int] = {}
        self.codes: list[np.ndarray] = []
        self.imp: list[int] = []
        self.clk: list[int] = []

    def add(self, codes: np.ndarray, impressions: np.ndarray, clicks: np.ndarray) -> None:
        idx = self.space.indices(codes)
        rows = zip(idx.tolist(), codes, impressions.tolist(), clicks.tolist(), strict=True)
        for i, c, n, y in rows:
            if n == 0:
                continue
            r = self.row.get(i)
            if r is None:
                self.row[i] = len(self.codes)
                self.codes.append(np.asarray(c, dtype=np.int32))
                self.imp.append(int(n))
                self.clk.append(int(y))
            else:
                self.imp[r] += int(n)
                self.clk[r] += int(y)

    @property
    def num_tested(self) -> int:
        return len(self.codes)

    def totals(self) -> tuple[int, int]:
        return int(sum(self.imp)), int(sum(self.clk))

    def padded_observations(self, capacity: int, pad_pool: np.ndarray) -> Observations:
        """Observations with exactly ``capacity`` rows: tested layouts + zero-impression pads.

        Zero-impression rows add nothing to the binomial likelihood, and a fixed row count
        lets a jitted fit reuse one compilation for the whole campaign.
        """
        codes = np.asarray(self.codes, dtype=np.int32).reshape(-1, self.space.num_components)
        need = capacity - len(codes)
        if need > 0:
            pool_idx = self.space.indices(pad_pool)
            free = pad_pool[~np.isin(pool_idx, np.fromiter(self.row, np.int64, len(self.row)))]
            codes = np.concatenate([codes, free[:need]])
        imp = np.zeros(len(codes), np.int64)
        clk = np.zeros(len(codes), np.int64)
        imp[: self.num_tested] = self.imp
        clk[: self.num_tested] = self.clk
        return Observations.from_codes(self.space, codes, imp, clk, source="campaign")


def _allowed_codes(space: LayoutSpace, limit: int) -> np.ndarray:
    """All allowed layouts as codes (spaces with at most ``limit`` allowed layouts)."""
    if space.num_allowed > limit:
        raise ValueError(
            f"this needs every allowed layout enumerated, but the space has "
            f"{space.num_allowed} (limit {limit})"
        )
    return np.concatenate([c for _, c in space.iter_chunks(65536, allowed_only=True)])


def _pad_pool(space: LayoutSpace, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` distinct allowed layouts to draw zero-impression padding rows from."""
    if space.num_allowed <= _FULL_PADDING_LIMIT:
        return _allowed_codes(space, _FULL_PADDING_LIMIT)
    seen: dict[int, np.ndarray] = {}
    while len(seen) < size:
        idx = rng.integers(0, space.size, size=2 * size)
        codes = space.codes(idx)
        keep = space.allowed_mask(codes)
        for i, c in zip(idx[keep].tolist(), codes[keep], strict=True):
            seen.setdefault(i, c)
    return np.asarray(list(seen.values())[:size], dtype=np.int32)


def _codes_of_frame(space: LayoutSpace, frame) -> np.ndarray:
    """Codes of a DataFrame that carries an ``index`` column (design / proposal output)."""
    return space.codes(np.asarray(frame["index"], dtype=np.int64))


def run_campaign(
    world: SyntheticWorld,
    strategy: str = "thompson",
    budget: int = 100_000,
    batch_size: int = 1_000,
    seed: int = 0,
    method: str = "laplace",
    model: str = "pairwise",
    initial: str = "pairwise",
    k: int = 8,
    num_samples: int = 1000,
    prior: PriorConfig | None = None,
    allocation: str = "multinomial",
    progress: bool = False,
    initial_size: int | None = None,
    fit_options: dict[str, Any] | None = None,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
) -> CampaignResult:
    """Play a multivariate test against a synthetic world and record regret per round.

    Each round serves ``batch_size`` impressions (the last round may be smaller), so a
    campaign has ``ceil(budget / batch_size)`` rounds. What a round does depends on the
    strategy:

    * model strategies (``"thompson"``, ``"top_two"``, ``"greedy"``, ``"ucb"``, with
      ``model="pairwise"`` or ``"additive"``): **round 0** serves the initial design
      (``initial_design(space, kind=initial)``; ``initial="uniform"`` spreads it over every
      allowed layout instead), with impressions split evenly over its layouts. Every later
      round serves ``propose(posterior, k=k, strategy=strategy)`` with impressions split by
      the proposal weights. After serving, the clicks are added to the running per-layout
      totals and the model is refitted (``fit(..., method=method)``). The pick is
      ``best_layout(posterior)``.
    * ``"uniform"``: a classic A/B/n test; every round spreads the batch evenly over all
      allowed layouts (deterministic largest-remainder rounding, random tie order). The pick
      is the layout with the highest observed CTR.
    * ``"independent"``: Thompson sampling with an independent Beta(1, 1)-Bernoulli arm per
      layout (the "N^D-MAB" baseline of Hill et al.). Within a round the posterior is frozen
      (the paper also updates per batch of 1,000) and each impression gets its own Beta draw
      and goes to that draw's argmax, which is exact per-impression Thompson sampling with
      delayed updates. The pick is the most-served arm.

    ``allocation`` splits a batch by weights: ``"multinomial"`` (each impression drawn
    independently from the weights, as per-impression Thompson sampling would) or
    ``"round"`` (largest-remainder rounding of ``batch_size * weight``).

    Compilation: the fit always sees the same number of observation rows. Spaces with at
    most 4,096 allowed layouts are fitted on every allowed layout (untested ones carry zero
    impressions, which contribute nothing to the likelihood); larger spaces pad the tested
    layouts with zero-impression rows up to the next power of two. The prior is fixed for the
    whole campaign (``base_rate`` = pooled CTR of round 0 unless ``prior`` is given), so a
    jitted fit and proposal compile once per campaign.

    Args:
        world: the ground truth.
        strategy: see above.
        budget: total impressions.
        batch_size: impressions per round.
        seed: integer seed; serving, fitting and proposing derive their seeds from it.
        method: inference method passed to ``fit``.
        model: ``"pairwise"`` or ``"additive"`` (model strategies only).
        initial: round-0 design of model strategies: ``"pairwise"``, ``"random"``,
            ``"full"`` (``initial_design`` kinds) or ``"uniform"``.
        k: layouts per proposal (model strategies).
        num_samples: posterior draws per fit.
        prior: prior for the fit; default ``PriorConfig(base_rate=<round-0 CTR>,
            link=world.link, pairwise=(model == "pairwise"))``.
        allocation: ``"multinomial"`` or ``"round"``.
        progress: print one line per round.
        initial_size: layouts in the round-0 design; default: the covering array for
            ``"pairwise"`` (topped up to this size if given), and for ``"random"`` the
            product of the two largest cardinalities (the smallest possible pairwise
            covering size), capped at the number of allowed layouts.
        fit_options: extra keyword options for ``fit`` (e.g. ``{"tol": 1e-2}`` for the
            Laplace fit), the same every round.
        callback: called as ``callback(round, record)`` after every round, where ``record``
            holds that round's entries of the result (``impressions``, ``local_regret``,
            ``simple_regret``, ``pick_index``, ``num_tested``, ...) and ``posterior`` (None
            for the baselines). For progress bars, logging or instrumentation.

    Returns:
        :class:`CampaignResult`.

    References:
        Hill et al., "An Efficient Bandit Algorithm for Realtime Multivariate Optimization",
        KDD 2017 (regret definitions and the uniform / N^D-MAB / MVT1 baselines).
    """
    if strategy not in MODEL_STRATEGIES + BASELINE_STRATEGIES:
        raise ValueError(
            f"strategy must be one of {MODEL_STRATEGIES + BASELINE_STRATEGIES}, got {strategy!r}"
        )
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if initial not in INITIAL_DESIGNS:
        raise ValueError(f"initial must be one of {INITIAL_DESIGNS}, got {initial!r}")
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation must be one of {ALLOCATIONS}, got {allocation!r}")
    if budget <= 0 or batch_size <= 0:
        raise ValueError("budget and batch_size must be positive")
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")

    space = world.space
    rng = np.random.default_rng(seed)
    best_ctr = world.best().ctr
    num_rounds = math.ceil(budget / batch_size)
    uses_model = strategy in MODEL_STRATEGIES
    ledger = _Ledger(space)

    rec: dict[str, list] = {
        key: []
        for key in (
            "impressions",
            "clicks",
            "local",
            "simple",
            "pick",
            "tested",
            "ntested",
            "seconds",
            "converged",
        )
    }
    allowed = None
    if not uses_model or initial == "uniform":
        allowed = _allowed_codes(space, _ENUMERATE_LIMIT)
    if uses_model:
        from layoutopt.design import UncoverablePairsWarning, initial_design
        from layoutopt.inference import FitWarning, fit
        from layoutopt.propose import propose
        from layoutopt.scoring import best_layout

        if space.num_allowed <= _FULL_PADDING_LIMIT:
            pool = _pad_pool(space, 0, rng)
            capacity_of = lambda n: len(pool)  # noqa: E731
        else:
            pool = _pad_pool(space, _bucket(budget // batch_size * k + 4096), rng)
            capacity_of = _bucket
    posterior = None
    converged = True

    for r in range(num_rounds):
        t0 = time.perf_counter()
        n_batch = min(batch_size, budget - r * batch_size)
        # ---------------------------------------------------------------- choose
        if strategy == "uniform":
            order = rng.permutation(len(allowed))
            codes = allowed[order]
            n = _allocate(np.ones(len(codes)), n_batch, "round", rng)
        elif strategy == "independent":
            a = np.ones(len(allowed))
            b = np.ones(len(allowed))
            if ledger.num_tested:
                served = space.indices(np.asarray(ledger.codes))
                pos = np.searchsorted(space.indices(allowed), served)
                a[pos] += ledger.clk
                b[pos] += np.asarray(ledger.imp) - np.asarray(ledger.clk)
            draws = rng.beta(a, b, size=(n_batch, len(allowed)))
            n = np.bincount(draws.argmax(axis=1), minlength=len(allowed)).astype(np.int64)
            codes = allowed
        elif r == 0:
            if initial == "uniform":
                codes = allowed
            else:
                size = initial_size
                if size is None and initial == "random":
                    top2 = sorted(space.cardinalities)[-2:]
                    size = min(space.num_allowed, math.prod(top2))
                # Pairs that no allowed layout contains cannot be covered; that is a property
                # of the space, already reported when the user builds a design themselves.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UncoverablePairsWarning)
                    design = initial_design(
                        space, seed=int(rng.integers(2**31)), size=size, kind=initial
                    )
                codes = _codes_of_frame(space, design)
            n = _allocate(np.ones(len(codes)), n_batch, "round", rng)
        else:
            batch = propose(posterior, space, k=k, strategy=strategy, seed=int(rng.integers(2**31)))
            codes = _codes_of_frame(space, batch)
            n = _allocate(np.asarray(batch["weight"]), n_batch, allocation, rng)
        # ----------------------------------------------------------------- serve
        keep = n > 0
        codes, n = codes[keep], n[keep]
        clicks = world.serve(codes, n, rng=rng)
        ctr = world.ctr_of_index(space.indices(codes))
        local = float(np.sum(n * (best_ctr - ctr)) / np.sum(n))
        ledger.add(codes, n, clicks)
        # ----------------------------------------------------------------- learn
        if uses_model:
            if prior is None and r == 0:
                imp0, clk0 = ledger.totals()
                rate = float(np.clip((clk0 + 0.5) / (imp0 + 1.0), 1e-4, 1 - 1e-4))
                prior = PriorConfig(
                    base_rate=float(f"{rate:.3g}"), link=world.link, pairwise=model == "pairwise"
                )
            obs = ledger.padded_observations(capacity_of(ledger.num_tested), pool)
            # A campaign refits ~100 times; early fits on sparse data may stop at the
            # iteration cap. That is recorded per round (``fit_converged``) rather than
            # raised as 100 warnings; the next round refits from scratch anyway.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", FitWarning)
                posterior = fit(
                    space,
                    obs,
                    method=method,
                    seed=int(rng.integers(2**31)),
                    num_samples=num_samples,
                    prior=prior,
                    **(fit_options or {}),
                )
            for w in caught:
                if not issubclass(w.category, FitWarning):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            converged = not any(issubclass(w.category, FitWarning) for w in caught)
            pick = int(best_layout(posterior, space).index)
        elif strategy == "uniform":
            rate = np.asarray(ledger.clk) / np.asarray(ledger.imp)
            pick = int(space.indices(ledger.codes[int(np.argmax(rate))][None])[0])
        else:
            pick = int(space.indices(ledger.codes[int(np.argmax(ledger.imp))][None])[0])
        imp_total, clk_total = ledger.totals()
        rec["impressions"].append(imp_total)
        rec["clicks"].append(clk_total)
        rec["local"].append(local)
        rec["simple"].append(float(best_ctr - world.ctr_of_index([pick])[0]))
        rec["pick"].append(pick)
        rec["tested"].append(bool(pick in ledger.row))
        rec["ntested"].append(ledger.num_tested)
        rec["seconds"].append(time.perf_counter() - t0)
        rec["converged"].append(converged)
        if callback is not None:
            callback(
                r,
                {
                    "impressions": imp_total,
                    "local_regret": local,
                    "simple_regret": rec["simple"][-1],
                    "pick_index": pick,
                    "pick_tested": rec["tested"][-1],
                    "num_tested": ledger.num_tested,
                    "seconds": rec["seconds"][-1],
                    "fit_converged": converged,
                    "posterior": posterior,
                },
            )
        if progress:
            print(
                f"round {r:4d}  impressions {imp_total:9d}  local regret {local:.4f}  "
                f"simple regret {rec['simple'][-1]:.4f}  tested {ledger.num_tested:6d}  "
                f"{rec['seconds'][-1]:.2f}s",
                flush=True,
            )

    return CampaignResult(
        strategy=strategy,
        model=model if uses_model else "none",
        impressions=np.asarray(rec["impressions"], np.int64),
        local_regret=np.asarray(rec["local"]),
        simple_regret=np.asarray(rec["simple"]),
        pick_index=np.asarray(rec["pick"], np.int64),
        pick_tested=np.asarray(rec["tested"], bool),
        num_tested=np.asarray(rec["ntested"], np.int64),
        seconds=np.asarray(rec["seconds"]),
        best_ctr=float(best_ctr),
        clicks=np.asarray(rec["clicks"], np.int64),
        fit_converged=np.asarray(rec["converged"], bool),
    )


# Worlds with audiences live in their own module; re-exported here with the other worlds.
from layoutopt.segment_sim import SegmentWorld, run_segment_campaign  # noqa: E402
