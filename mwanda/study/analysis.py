"""Language statistics of a dense model (notebook 02): what M-Wanda's terms see, block by block.

``dense_statistics`` runs the dense model once over a calibration set and keeps, per block, the
per-language statistics of every linear input (with sums and FFN activity) and of the block's
input hidden states. The summaries below turn them into tidy DataFrames for plotting.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from mwanda.core import allocation, scores
from mwanda.core.calibration import CalibrationSet
from mwanda.core.config import PruneConfig
from mwanda.core.memory import auto_batch_size
from mwanda.core.passes import BlockInputs
from mwanda.core.plan import make_plan
from mwanda.core.prune import dense_blocks
from mwanda.core.stats import LanguageStats


@dataclass
class DenseStatistics:
    languages: list[str]
    block_inputs: list[LanguageStats]  # per block: statistics of its input hidden states
    linears: list[dict[str, LanguageStats]]  # per block: statistics of each linear's input
    ffn_down: list[str | None]  # per block: local name of the FFN down-projection


@torch.no_grad()
def dense_statistics(model, calib: CalibrationSet, batch_size: int | str = 8) -> DenseStatistics:
    """One dense pass over all blocks; statistics moved to the CPU as they are finished
    (``batch_size`` "auto": as the runner resolves it)."""
    if batch_size == "auto":
        batch_size = auto_batch_size(model, calib.nsamples, calib.seqlen)
    plan = make_plan(model, PruneConfig())
    x = BlockInputs.capture(model, calib, batch_size)
    block_inputs, linears = [], []
    walk = dense_blocks(plan, x, ffn=True, track_sums=True, block_inputs=True)
    for _, block_in, stats in walk:
        block_inputs.append(block_in.to("cpu"))
        linears.append({name: s.to("cpu") for name, s in stats.items()})
    return DenseStatistics(calib.languages, block_inputs, linears, [f[0] if f else None for f in plan.ffn])


def statistics_state(st: DenseStatistics) -> dict:
    """``st`` as plain lists, dicts and tensors (``torch.load(weights_only=True)`` reads them)."""

    def plain(s: LanguageStats) -> dict:
        return {"counts": s.counts, "sumsq": s.sumsq, "sums": s.sums, "active": s.active}

    return {
        "languages": list(st.languages),
        "block_inputs": [plain(s) for s in st.block_inputs],
        "linears": [{name: plain(s) for name, s in layer.items()} for layer in st.linears],
        "ffn_down": list(st.ffn_down),
    }


def statistics_from_state(state: dict) -> DenseStatistics:
    """The inverse of ``statistics_state``."""
    return DenseStatistics(
        state["languages"],
        [LanguageStats(**s) for s in state["block_inputs"]],
        [{name: LanguageStats(**s) for name, s in layer.items()} for layer in state["linears"]],
        state["ffn_down"],
    )


def language_norms(st: DenseStatistics) -> pd.DataFrame:
    """Mean over features of each language's RMS activation r_lj, per block and linear."""
    rows = []
    for b, layer_stats in enumerate(st.linears):
        for name, s in layer_stats.items():
            r = scores.language_rms(s.counts, s.sumsq).mean(dim=1)
            rows += [
                {"block": b, "layer": name, "language": lang, "rms": float(v)}
                for lang, v in zip(st.languages, r, strict=True)
            ]
    return pd.DataFrame(rows)


def variation(st: DenseStatistics, kind: str = "rms_cv") -> pd.DataFrame:
    """V_j of every input feature, per block and linear (long format)."""
    rows = []
    for b, layer_stats in enumerate(st.linears):
        for name, s in layer_stats.items():
            if kind == "rms_cv":
                v = scores.variation_rms_cv(scores.language_rms(s.counts, s.sumsq))
            else:
                v = scores.variation_anova(s.counts, s.sumsq, s.sums)
            rows.append(
                pd.DataFrame({"block": b, "layer": name, "feature": range(v.numel()), "V": v.numpy()})
            )
    return pd.concat(rows, ignore_index=True)


def activation_probability(st: DenseStatistics) -> pd.DataFrame:
    """p_lj of every FFN neuron per block and language, with P_j = max_l p_lj and LAPE entropy."""
    rows = []
    for b, down in enumerate(st.ffn_down):
        if down is None:
            continue
        s = st.linears[b][down]
        p = s.active / s.counts.reshape(-1, 1)  # [L, d_ff]
        ent = lape(p)
        for li, lang in enumerate(st.languages):
            rows.append(
                pd.DataFrame(
                    {
                        "block": b,
                        "neuron": range(p.shape[1]),
                        "language": lang,
                        "p": p[li].numpy(),
                        "P": p.amax(0).numpy(),
                        "entropy": ent.numpy(),
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def lape(p: torch.Tensor) -> torch.Tensor:
    """Language activation probability entropy per neuron (Tang et al., ACL 2024): the entropy
    of p_lj normalized over languages. Low entropy = the neuron fires for few languages."""
    q = p / p.sum(dim=0, keepdim=True).clamp_min(1e-12)
    return -(q * q.clamp_min(1e-12).log()).sum(dim=0)


def language_specific_neurons(
    probs: pd.DataFrame, quantile: float = 0.01, min_p: float = 0.05
) -> pd.DataFrame:
    """Neurons in the lowest ``quantile`` of LAPE entropy (over all blocks) that fire on at least
    ``min_p`` of some language's tokens, each assigned to the languages above ``min_p``."""
    neurons = probs.drop_duplicates(["block", "neuron"])
    cut = neurons["entropy"].quantile(quantile)
    chosen = probs[(probs["entropy"] <= cut) & (probs["P"] >= min_p) & (probs["p"] >= min_p)]
    return chosen.groupby(["block", "language"]).size().rename("neurons").reset_index()


def correlation_by_block(st: DenseStatistics) -> pd.DataFrame:
    """CWL's rho_b (mean pairwise correlation of language centroids) and D_b = 1 - rho_b."""
    rho = [allocation.cross_lingual_correlation(s.counts, s.sums, s.sumsq) for s in st.block_inputs]
    return pd.DataFrame({"block": range(len(rho)), "rho": rho, "D": [1 - r for r in rho]})
