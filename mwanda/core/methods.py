"""Pruning methods as plug-ins: what each needs from the calibration pass, and how it prunes.

A method declares the statistics it needs (``Needs``) and prunes one linear at a time
(``Method.prune``): score methods (magnitude, Wanda, RIA, M-Wanda) score every weight and zero
the lowest; SparseGPT chooses its mask and updates the remaining weights. The driver
(``prune.py``) collects what ``needs`` asks for and calls ``prune`` for every linear, so adding a
method is a class here and a name in ``config.METHODS``, never an edit of the block loop.
The formulas live in ``scores.py`` and ``sparsegpt.py`` (pure tensor functions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mwanda.core import scores, sparsegpt
from mwanda.core.config import METHODS as METHOD_NAMES
from mwanda.core.config import PruneConfig
from mwanda.core.stats import LanguageStats, StatsError
from mwanda.errors import MwandaWarning

Tensor = torch.Tensor


class DampingWarning(MwandaWarning):
    """A Hessian needed more dampening than ``percdamp`` to be inverted."""


@dataclass(frozen=True)
class Needs:
    """What a method reads from the calibration pass of a block."""

    data: bool = True  # calibration activations at all (uniform magnitude pruning reads none)
    sums: bool = False  # per-language sums of x (ANOVA variation)
    activity: bool = False  # FFN activity counts (M-Wanda's P_j)
    hessian: bool = False  # sum_l w_l sum_{t in l} x_t x_t^T per linear input
    balanced: bool = False  # Hessian weights w_l = N / (L n_l) instead of 1


@dataclass
class Layer:
    """One linear to prune: its name, the [d_out, d_in] weight view (writing it writes the
    model), its statistics, whether it is the FFN down-projection, and its sparsity target."""

    name: str
    W: Tensor
    stats: LanguageStats | None
    is_ffn_down: bool
    sparsity: float
    per_row: int | None = None  # exact per-row count under non-uniform allocation


class Method:
    """A pruning method: ``needs`` (statistics) and ``prune`` (mask one layer, in place)."""

    name = ""

    def needs(self, cfg: PruneConfig) -> Needs:
        return Needs()

    def prune(self, layer: Layer, cfg: PruneConfig) -> tuple[Tensor, dict]:
        """Prune ``layer.W`` in place; return (mask, True = pruned) and extra report fields."""
        raise NotImplementedError


def _language_needs(cfg: PruneConfig, **kw) -> Needs:
    """M-Wanda's statistics: activity counts for P_j (beta > 0), sums for ANOVA V_j."""
    return Needs(
        activity=cfg.beta > 0,
        sums=cfg.alpha > 0 and cfg.variation == "anova",
        **kw,
    )


class ScoreMethod(Method):
    """Score every weight, zero the lowest (``scores.prune_mask``: per row, per layer or N:M)."""

    def score(self, W: Tensor, st: LanguageStats | None, cfg: PruneConfig, is_ffn_down: bool) -> Tensor:
        raise NotImplementedError

    def prune(self, layer: Layer, cfg: PruneConfig) -> tuple[Tensor, dict]:
        score = self.score(layer.W, layer.stats, cfg, layer.is_ffn_down)
        if not scores.all_finite(score):
            raise StatsError(
                f"the scores of {layer.name} are NaN or Inf (method={cfg.method}); check its "
                "weights and calibration data, or lower alpha/beta/ria_a."
            )
        mask = scores.prune_mask(score, layer.sparsity, cfg.structure, cfg.comparison, layer.per_row)
        layer.W.masked_fill_(mask, 0)
        return mask, {}


class Magnitude(ScoreMethod):
    """|W_ij|: reads no calibration data."""

    name = "magnitude"

    def needs(self, cfg: PruneConfig) -> Needs:
        return Needs(data=False)

    def score(self, W, st, cfg, is_ffn_down) -> Tensor:
        return scores.magnitude(W)


def _activation(st: LanguageStats, cfg: PruneConfig, is_ffn_down: bool, language_aware: bool) -> Tensor:
    """||X_j||_2 (Wanda) or M-Wanda's base_j (1 + alpha V_j)(1 + beta P_j)."""
    if not language_aware:
        return scores.wanda_activation(st.sumsq)
    active = st.active if is_ffn_down else None
    return scores.mwanda_activation(st.counts, st.sumsq, st.sums, active, cfg.alpha, cfg.beta, cfg.variation)


class Wanda(ScoreMethod):
    """Sun et al. 2024: |W_ij| ||X_j||_2."""

    name = "wanda"

    def score(self, W, st, cfg, is_ffn_down) -> Tensor:
        return scores.wanda(W, _activation(st, cfg, is_ffn_down, False).to(W.device))


class MWanda(ScoreMethod):
    """M-Wanda: |W_ij| base_j (1 + alpha V_j)(1 + beta P_j) (docs/method.md)."""

    name = "mwanda"

    def needs(self, cfg: PruneConfig) -> Needs:
        return _language_needs(cfg)

    def score(self, W, st, cfg, is_ffn_down) -> Tensor:
        return scores.wanda(W, _activation(st, cfg, is_ffn_down, True).to(W.device))


class RIA(ScoreMethod):
    """Zhang et al. 2024: relative importance times act_j^a; ``language_aware`` uses M-Wanda's
    activation term as act_j."""

    name = "ria"

    def needs(self, cfg: PruneConfig) -> Needs:
        return _language_needs(cfg) if cfg.language_aware else Needs()

    def score(self, W, st, cfg, is_ffn_down) -> Tensor:
        act = _activation(st, cfg, is_ffn_down, cfg.language_aware).to(W.device)
        return scores.ria(W, act, cfg.ria_a)


class SparseGPT(Method):
    """Frantar & Alistarh 2023 (arXiv:2301.00774): OBS mask selection and weight updates from
    H = 2/N sum_t x_t x_t^T (``sparsegpt.py``).

    ``language_aware`` (this repository's extension, not in either paper): the Hessian weighs
    every language the same, H = 2/N sum_l w_l sum_{t in l} x_t x_t^T with w_l = N / (L n_l),
    and the mask multiplies each saliency by s_j^2, s_j = (1 + alpha V_j)(1 + beta P_j) from
    M-Wanda's statistics; the weight update uses H unchanged.
    """

    name = "sparsegpt"

    def needs(self, cfg: PruneConfig) -> Needs:
        if cfg.language_aware:
            return _language_needs(cfg, hessian=True, balanced=True)
        return Needs(hessian=True)

    def prune(self, layer: Layer, cfg: PruneConfig) -> tuple[Tensor, dict]:
        st = layer.stats
        scale = None
        if cfg.language_aware:
            active = st.active if layer.is_ffn_down else None
            scale = scores.language_scale(
                st.counts, st.sumsq, st.sums, active, cfg.alpha, cfg.beta, cfg.variation
            )
        f = self._factor(layer, cfg)
        W, mask = sparsegpt.prune_layer(layer.W, f, _rule(layer, cfg), cfg.blocksize, scale)
        st.hessian.done()
        if not scores.all_finite(W):
            raise StatsError(f"SparseGPT's updated weights of {layer.name} are NaN or Inf; raise --percdamp.")
        layer.W.copy_(W)
        return mask, {"damping": f.percdamp}

    @staticmethod
    def _factor(layer: Layer, cfg: PruneConfig) -> sparsegpt.Factor:
        """The factor of the layer's Hessian, computed by the first linear that reads its input
        and reused by the others (it depends on H alone). H = 2/N sum ... is scaled and dampened
        in place and freed once factored: one d_in x d_in matrix beside it at most."""
        hessian = layer.stats.hessian
        if hessian.factor is None:
            H, hessian.matrix = hessian.matrix, None
            H.mul_(2.0 / float(layer.stats.counts.sum()))  # every user has the same N (one input)
            try:
                hessian.factor = sparsegpt.factor(H, cfg.percdamp)
            except sparsegpt.NotPositiveDefinite as exc:
                raise StatsError(
                    f"the Hessian of {layer.name} is not positive definite even with "
                    f"percdamp={exc.percdamp:g} (tried {sparsegpt.MAX_DAMPING_TRIES} dampenings from "
                    f"{cfg.percdamp:g}, 10x each); check its calibration data (too few tokens?) or raise "
                    "--percdamp."
                ) from None
        return hessian.factor


def _rule(layer: Layer, cfg: PruneConfig) -> sparsegpt.MaskRule:
    """The mask rule with the other methods' count semantics (``scores.prune_mask``)."""
    d_out, d_in = layer.W.shape
    if cfg.nm is not None:
        return sparsegpt.NM(*cfg.nm)
    if cfg.comparison == "layer":
        return sparsegpt.PerLayer(int(d_out * d_in * layer.sparsity))
    return sparsegpt.PerRow(int(d_in * layer.sparsity) if layer.per_row is None else layer.per_row)


REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Make ``method`` available by its name (``config.METHODS`` lists the names the CLI offers)."""
    REGISTRY[method.name] = method
    return method


for _method in (Magnitude(), Wanda(), RIA(), MWanda(), SparseGPT()):
    register(_method)
if set(REGISTRY) != set(METHOD_NAMES):  # the CLI's choices come from config.METHODS (no torch there)
    raise ImportError(f"config.METHODS {METHOD_NAMES} and the method registry {sorted(REGISTRY)} differ.")


def get(cfg: PruneConfig) -> Method:
    """The method ``cfg`` names."""
    return REGISTRY[cfg.method]
