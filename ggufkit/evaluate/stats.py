"""Running statistics of one model on the text, and of its token distributions against the base model's,
with the names and formulas llama-perplexity prints (tools/perplexity/perplexity.cpp).

Per scored token only a few floats are kept (its negative log-likelihood, the KL-divergence from the
base, Δp, whether the top token agrees): for a 300k-token text that is a few MB, never a T x V array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _mean_err(x: np.ndarray) -> tuple[float, float]:
    n = len(x)
    if n == 0:
        return math.nan, math.nan
    mean = float(x.mean(dtype=np.float64))
    return mean, float(np.sqrt(max(float((x.astype(np.float64) ** 2).mean()) - mean * mean, 0.0) / max(n - 1, 1)))


@dataclass
class Tally:
    nll: list[np.ndarray] = field(default_factory=list)  # per scored token, chunk by chunk
    kld: list[np.ndarray] = field(default_factory=list)  # KL(base || this), nats
    dp: list[np.ndarray] = field(default_factory=list)  # p_this(token) - p_base(token)
    same_top: list[np.ndarray] = field(default_factory=list)

    def perplexity(self) -> dict[str, float]:
        nll = np.concatenate(self.nll) if self.nll else np.zeros(0)
        mean, err = _mean_err(nll)
        ppl = math.exp(mean) if len(nll) else math.nan
        return {"ppl": ppl, "ppl_err": ppl * err, "tokens": len(nll)}

    def against(self, base: Tally) -> dict[str, Any]:
        """llama-perplexity's --kl-divergence statistics of this model against `base`."""
        nll, nll_b = np.concatenate(self.nll), np.concatenate(base.nll)
        kld, dp = np.concatenate(self.kld), np.concatenate(self.dp)
        same = np.concatenate(self.same_top).astype(np.float64)
        n = len(kld)
        ln_ratio, ln_err = _mean_err(nll - nll_b)
        ppl_q, ppl_b = math.exp(nll.mean()), math.exp(nll_b.mean())
        kld_mean, kld_err = _mean_err(kld)
        dp_mean, dp_err = _mean_err(dp)
        rms = float(np.sqrt((dp.astype(np.float64) ** 2).mean()))
        top = float(same.mean())
        pct = {f"p{q:g}": float(np.percentile(kld, q)) for q in (99.9, 99, 95, 90, 50, 10, 5, 1, 0.1)}
        return {
            "ppl_ratio": math.exp(ln_ratio), "ppl_ratio_err": math.exp(ln_ratio) * ln_err,
            "ln_ppl_ratio": ln_ratio, "ln_ppl_ratio_err": ln_err,
            "ppl_diff": ppl_q - ppl_b, "cor_ln_ppl": float(np.corrcoef(nll, nll_b)[0, 1]) if n > 1 else math.nan,
            "kld_mean": kld_mean, "kld_err": kld_err, "kld_median": pct["p50"], "kld_p99": pct["p99"],
            "kld_max": float(kld.max()), "kld_min": float(kld.min()), "kld_percentiles": pct,
            "dp_mean": dp_mean, "dp_err": dp_err, "dp_rms": rms, "dp_max": float(dp.max()), "dp_min": float(dp.min()),
            "same_top": top, "same_top_err": math.sqrt(top * (1 - top) / max(n - 1, 1)),
        }


def chunk_scores(lp: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Negative log-likelihood of each target token from rows of log-probabilities."""
    return -lp[np.arange(len(targets)), targets].astype(np.float64)


def compare_rows(lp_base: np.ndarray, lp: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(KL(base || q), Δp, same top token) per row. float64 sums over the vocabulary, as llama.cpp does."""
    p_base = np.exp(lp_base)
    kld = (p_base * (lp_base - lp)).sum(axis=1, dtype=np.float64)
    rows = np.arange(len(targets))
    dp = np.exp(lp[rows, targets].astype(np.float64)) - p_base[rows, targets]
    same = lp_base.argmax(axis=1) == lp.argmax(axis=1)
    return np.maximum(kld, 0.0), dp, same
