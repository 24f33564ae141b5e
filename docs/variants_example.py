"""The README example of variant attributes, new/retired variants and a meta-prior.

Run: python docs/variants_example.py (writes meta.json in the current directory).
"""

import numpy as np

import layoutopt as lo

space = lo.LayoutSpace(
    {
        "headline": ["Free same-day delivery", "Save 10%", "Free returns", "New arrivals"],
        "image": ["lifestyle", "product"],
    },
    attributes={
        "headline": {
            "Free same-day delivery": {"free": True, "theme": "speed"},
            "Save 10%": {"free": False, "theme": "price"},
            "Free returns": {"free": True, "theme": "price"},
            "New arrivals": {"free": False, "theme": "speed"},
        }
    },
)
rng = np.random.default_rng(0)
codes = space.codes(np.arange(space.size))
true_eta = -3.2 + 0.4 * space.attribute_matrix(0)[codes[:, 0], 0] + 0.1 * codes[:, 1]
obs = lo.Observations.from_codes(
    space, codes, np.full(len(codes), 2000), rng.binomial(2000, 1 / (1 + np.exp(-true_eta)))
)
post = lo.fit(space, obs, seed=0)
beta = post.hyper["beta"]
for j, name in enumerate(lo.priors.attribute_design(space)[1]):
    lo5, hi5 = np.quantile(beta[:, j], [0.05, 0.95])
    print(f"{name:22s} mean {beta[:, j].mean():+.2f}  90% [{lo5:+.2f}, {hi5:+.2f}]")

new = space.with_variants(
    {"headline": ["Free gift wrap"]},
    attributes={"headline": {"Free gift wrap": {"free": True, "theme": "speed"}}},
)
new = new.without_variants({"headline": ["New arrivals"]})
post2 = lo.fit(new, obs.to_space(new), seed=0)
print(
    lo.score_grid(post2, new)
    .to_pandas()[["headline", "image", "mean", "lower", "upper"]]
    .round(4)
    .to_string(index=False)
)
meta = lo.MetaPrior.learn([post, post2], sources=["spring", "summer"])
meta.save("meta.json")
print(open("meta.json").read()[:600])
