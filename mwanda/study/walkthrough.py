"""One layer, from activations to masks: what M-Wanda keeps that Wanda drops, and why.

The walkthrough notebook takes one linear layer of a dense model and follows the score the
pruning core computes (``mwanda.core.scores``, the same functions, not a re-implementation):

1. per-language RMS activations r_lj = sqrt(sum_{t in l} x_tj^2 / n_l);
2. their cross-lingual variation V_j = std_l r_lj / mean_l r_lj;
3. for an FFN down-projection, the activation probability P_j = max_l p_lj (share of language
   l's tokens on which neuron j is active);
4. Wanda's score |W_ij| ||X_j||_2 and M-Wanda's |W_ij| base_j (1 + alpha V_j)(1 + beta P_j);
5. both masks at one sparsity, compared within each output row (Wanda's row-wise comparison).

A weight that Wanda prunes and M-Wanda keeps sits on an input feature whose language terms
(1 + alpha V_j)(1 + beta P_j) are large relative to the rest of its row: the feature matters a lot
to some languages and little to others, which an all-language norm averages away.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from mwanda.core import scores
from mwanda.core.blocks import block_linears, find_blocks, weight_matrix
from mwanda.study.analysis import DenseStatistics

Tensor = torch.Tensor


@dataclass(frozen=True)
class LayerWalk:
    """Every intermediate of the two scores of one layer (float64 statistics, float32 scores)."""

    block: int
    layer: str
    languages: list[str]
    weight: Tensor  # [d_out, d_in]
    r: Tensor  # [L, d_in] per-language RMS activation r_lj
    norm: Tensor  # [d_in] Wanda's ||X_j||_2
    V: Tensor  # [d_in] cross-lingual variation
    P: Tensor | None  # [d_in] activation probability (FFN down-projection only)
    scale: Tensor  # [d_in] (1 + alpha V_j)(1 + beta P_j)
    wanda_mask: Tensor  # [d_out, d_in] True = pruned
    mwanda_mask: Tensor  # [d_out, d_in] True = pruned


def layer_weight(model: torch.nn.Module, block: int, layer: str) -> Tensor:
    """The weight [d_out, d_in] of linear ``layer`` (e.g. ``mlp.down_proj``) of block ``block``."""
    path, blocks = find_blocks(model)
    linears = block_linears(blocks[block], f"{path}.{block}.", (), ())
    if layer not in linears:
        raise KeyError(f"block {block} has no prunable linear {layer!r}; it has {sorted(linears)}")
    return weight_matrix(linears[layer]).detach().float().cpu()


def walk_layer(
    model: torch.nn.Module,
    st: DenseStatistics,
    block: int,
    layer: str,
    alpha: float,
    beta: float,
    sparsity: float,
) -> LayerWalk:
    """Both scores of one layer and their masks (unstructured, row-wise) at ``sparsity``."""
    s = st.linears[block][layer]
    W = layer_weight(model, block, layer)
    r = scores.language_rms(s.counts, s.sumsq)
    P = scores.activation_probability(s.counts, s.active) if s.active is not None else None
    norm = scores.wanda_activation(s.sumsq)
    wanda = scores.wanda(W, norm)
    act = scores.mwanda_activation(s.counts, s.sumsq, s.sums, s.active, alpha=alpha, beta=beta)
    mwanda = scores.wanda(W, act)
    return LayerWalk(
        block=block,
        layer=layer,
        languages=list(st.languages),
        weight=W,
        r=r,
        norm=norm,
        V=scores.variation_rms_cv(r),
        P=P,
        scale=scores.language_scale(s.counts, s.sumsq, s.sums, s.active, alpha=alpha, beta=beta),
        wanda_mask=scores.prune_mask(wanda, sparsity),
        mwanda_mask=scores.prune_mask(mwanda, sparsity),
    )


def disagreement(walk: LayerWalk) -> dict[str, float]:
    """Shares of the layer's weights: pruned by both, kept only by M-Wanda, kept only by Wanda.
    Both masks prune the same number per row, so the last two are equal."""
    n = walk.wanda_mask.numel()
    only_mwanda_keeps = (walk.wanda_mask & ~walk.mwanda_mask).sum().item() / n
    only_wanda_keeps = (~walk.wanda_mask & walk.mwanda_mask).sum().item() / n
    both = (walk.wanda_mask & walk.mwanda_mask).sum().item() / n
    return {
        "pruned_by_both": both,
        "kept_only_by_mwanda": only_mwanda_keeps,
        "kept_only_by_wanda": only_wanda_keeps,
        "masks_differ": only_mwanda_keeps + only_wanda_keeps,
    }


def features(walk: LayerWalk) -> pd.DataFrame:
    """One row per input feature j: V_j, P_j, the language scale, Wanda's norm, and how many of
    its weights M-Wanda keeps that Wanda prunes (``rescued``) and the reverse (``dropped``)."""
    rescued = (walk.wanda_mask & ~walk.mwanda_mask).sum(dim=0)
    dropped = (~walk.wanda_mask & walk.mwanda_mask).sum(dim=0)
    frame = pd.DataFrame(
        {
            "feature": range(walk.V.numel()),
            "V": walk.V.numpy(),
            "scale": walk.scale.numpy(),
            "norm": walk.norm.numpy(),
            "rescued": rescued.numpy(),
            "dropped": dropped.numpy(),
        }
    )
    if walk.P is not None:
        frame.insert(2, "P", walk.P.numpy())
    return frame


def language_profile(walk: LayerWalk, feature: int) -> pd.DataFrame:
    """r_lj of one feature per language, and its ratio to the mean over languages."""
    r = walk.r[:, feature]
    return pd.DataFrame({"language": walk.languages, "r": r.numpy(), "ratio_to_mean": (r / r.mean()).numpy()})
