"""Streaming per-language activation statistics of linear layers.

For every linear layer's input and every calibration language we keep, in float64 whatever
the model dtype: the token count, the sum of x_j^2 and the sum of x_j per input feature. For
an FFN down-projection we also count, per language, the tokens on which each of its input
neurons is active (the gate pre-activation > 0 for gated MLPs, the first projection's output
> 0 for ungated ones). No per-token activation is stored.

Methods that need a Hessian (SparseGPT) also get, per distinct linear input, the d_in x d_in sum
sum_l w_l sum_{t in l} x_t x_t^T in float64, with per-language weights w_l fixed before the pass
(1 for plain SparseGPT; N / (L n_l) for the language-balanced extension). Linears that receive
the very same input tensor (q/k/v, gate/up) share one Hessian.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from mwanda.core.scores import all_finite
from mwanda.errors import UserError

Tensor = torch.Tensor


class StatsError(UserError, RuntimeError):
    """Statistics are unusable (NaN/Inf); the message names the fix."""


class StatsComplete(Exception):
    """Raised by a statistics hook once a batch's statistics are complete (``stop_early``)."""


@dataclass
class LanguageStats:
    """Per-language sums over tokens of one input: counts [L], sumsq and sums [L, d].

    ``sums`` is None when not tracked: only ANOVA variation and CWL need it, and skipping it
    keeps plain Wanda as cheap as it can be.
    """

    counts: Tensor
    sumsq: Tensor
    sums: Tensor | None
    active: Tensor | None = None  # [L, d]: FFN down-projection inputs only
    # sum_l w_l sum_{t in l} x_t x_t^T, when a method needs it: one holder for all the linears that
    # share an input (q/k/v, gate/up), see ``Hessian``
    hessian: Hessian | None = None

    @classmethod
    def zeros(
        cls, n_langs: int, dim: int, device: torch.device | str = "cpu", sums: bool = True
    ) -> LanguageStats:
        z = dict(dtype=torch.float64, device=device)
        return cls(
            torch.zeros(n_langs, **z),
            torch.zeros(n_langs, dim, **z),
            torch.zeros(n_langs, dim, **z) if sums else None,
        )

    def add(self, x: Tensor, lang_idx: Tensor) -> None:
        """Accumulate a batch ``x`` whose sequence i is in language lang_idx[i].

        ``x`` is [B, T, d] or, as some models pass FFN inputs, flattened to [B * T, d].
        """
        seqs = x.reshape(lang_idx.numel(), -1, x.shape[-1])
        onehot = _onehot(lang_idx, self.counts.numel(), seqs.device)  # [L, B]
        self.counts += onehot.sum(dim=1) * seqs.shape[1]
        # Each sequence is summed over its tokens in float64, then the sequences are combined per
        # language by one matmul. The float64 copy is made a chunk of whole sequences at a time
        # (``seq_chunks``), never [B, T, d] at once (the largest temporary of a statistics pass
        # otherwise), and reduced by one call per chunk, not one per sequence: a batch of many
        # short sequences costs as many kernel calls as one of few long ones. Each sequence's
        # sum is bit-identical to reducing it alone (tested).
        sumsq = torch.empty(seqs.shape[0], seqs.shape[-1], dtype=torch.float64, device=seqs.device)
        sums = torch.empty_like(sumsq) if self.sums is not None else None
        for start, end in seq_chunks(seqs.shape[0], seqs[0].numel(), seqs.device):
            # a contiguous copy: square_ must not touch a float64 input
            chunk64 = seqs[start:end].to(torch.float64, memory_format=torch.contiguous_format, copy=True)
            if sums is not None:
                torch.sum(chunk64, dim=1, out=sums[start:end])
            torch.sum(chunk64.square_(), dim=1, out=sumsq[start:end])
        self.sumsq += onehot @ sumsq
        if sums is not None:
            self.sums += onehot @ sums

    def add_batches(self, x: Tensor, lang_idx: list[Tensor]) -> None:
        """``add`` batch by batch over the rows of ``x`` (``lang_idx`` as split per batch), so a
        whole [N, T, d] buffer is never copied to float64 at once."""
        start = 0
        for idx in lang_idx:
            self.add(x[start : start + idx.numel()], idx)
            start += idx.numel()

    def add_active(self, pre_activation: Tensor, lang_idx: Tensor) -> None:
        """Count tokens with ``pre_activation`` > 0 per language and neuron."""
        on = (pre_activation > 0).reshape(lang_idx.numel(), -1, pre_activation.shape[-1])
        if self.active is None:
            self.active = torch.zeros_like(self.sumsq)
        onehot = _onehot(lang_idx, self.counts.numel(), on.device)
        self.active += onehot @ on.sum(dim=1, dtype=torch.float64)

    def check_finite(self, name: str) -> None:
        for part in (self.sumsq, self.sums, None if self.hessian is None else self.hessian.matrix):
            # all_finite, not isfinite(part).all(): that builds |part| and a bool copy, a second
            # d x d matrix at the peak for a Hessian
            if part is not None and not all_finite(part):
                raise StatsError(
                    f"NaN/Inf in the activation statistics of {name}: the model overflows on the "
                    "calibration data; load it in float32 or bfloat16 (--dtype) or check its weights."
                )

    def to(self, device: torch.device | str) -> LanguageStats:
        """A copy on ``device`` (without the Hessian: the dense pass that moves statistics never
        collects one, and a moved copy could not stay shared with the other linears)."""
        if self.hessian is not None:
            raise ValueError(
                "LanguageStats.to does not move Hessians; prune the block where it was collected."
            )
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return LanguageStats(move(self.counts), move(self.sumsq), move(self.sums), move(self.active))


@dataclass(eq=False)
class Hessian:
    """The Hessian sum_l w_l sum_{t in l} x_t x_t^T [d, d] (float64) of one linear input, held once
    for the ``users`` linears that read that input (q/k/v share one, gate/up another).

    A method that factorises it (SparseGPT) does so once, for the first of its users: it takes
    ``matrix`` (then None, freed as soon as the factor exists), leaves the factor in ``factor`` for
    the others, and calls ``done`` after each user, so the last one frees the factor too.
    """

    matrix: Tensor | None
    users: int = 1
    factor: object | None = None

    def done(self) -> None:
        """One user has been pruned; after the last, nothing is kept."""
        self.users -= 1
        if self.users == 0:
            self.matrix = self.factor = None


def nbytes(stats: dict[str, LanguageStats]) -> int:
    """Bytes the statistics of one block hold: each tensor once, however many linears share it
    (a shared Hessian), so the growth with the number of languages can be measured (notebook 08)."""
    seen: dict[int, int] = {}
    for st in stats.values():
        parts = [st.counts, st.sumsq, st.sums, st.active]
        parts.append(None if st.hessian is None else st.hessian.matrix)
        for t in parts:
            if t is not None:
                seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(seen.values())


def add_hessian(H: Tensor, x: Tensor, lang_idx: Tensor, lang_weights: Tensor) -> None:
    """H += sum_i w_{l(i)} X_i^T X_i over the sequences X_i [T, d] of batch ``x`` (sequence i in
    language lang_idx[i]; ``lang_weights`` [L]).

    float64, one product per sequence, in order: the sum runs in the same order whatever the batch
    size, so batching changes H by nothing beyond the inputs' own rounding. The float64 copy is
    made a chunk of whole sequences at a time (``seq_chunks``), not [B, T, d] at once. float64
    rather than float32 because H is summed over up to ~10^5-10^6 tokens and then inverted:
    float32 would lose digits before the Cholesky amplifies the error.
    """
    seqs = x.reshape(lang_idx.numel(), -1, x.shape[-1])
    weights = lang_weights[lang_idx.cpu()].tolist()
    for start, end in seq_chunks(seqs.shape[0], seqs[0].numel(), seqs.device):
        chunk64 = seqs[start:end].to(torch.float64, memory_format=torch.contiguous_format)
        for seq64, w in zip(chunk64, weights[start:end], strict=True):
            H.addmm_(seq64.T, seq64, alpha=w)


# On CPU, the most elements of activations that the statistics copy to float64 at once (2**21:
# 16 MiB): a batch is reduced a chunk of whole sequences at a time, one sequence when a sequence
# alone is larger. Results do not depend on it (tested). Fewer, larger chunks are faster: each
# kernel call has a fixed cost, and a high one when other processes hold the cores (a parallel
# kernel waits for all its threads): one call per sequence made many short sequences slower than
# few long ones of the same tokens.
CHUNK_ELEMENTS = 2**21


def seq_chunks(n_seqs: int, seq_elements: int, device: torch.device | str = "cpu") -> list[tuple[int, int]]:
    """(start, end) ranges of whole sequences: on CPU at most CHUNK_ELEMENTS elements each, or one
    sequence when a sequence alone is larger. Elsewhere one sequence each: a GPU reduction splits
    its work by the shape it is given, so a chunk could sum a sequence in another order than the
    sequence alone (and a kernel launch costs little there)."""
    on_cpu = torch.device(device).type == "cpu"
    step = max(1, CHUNK_ELEMENTS // max(1, seq_elements)) if on_cpu else 1
    return [(start, min(start + step, n_seqs)) for start in range(0, n_seqs, step)]


def _onehot(lang_idx: Tensor, n_langs: int, device: torch.device) -> Tensor:
    """[L, B] float64 one-hot: a matmul with it sums per language (much faster than index_add_)."""
    return torch.nn.functional.one_hot(lang_idx.to(device), n_langs).T.to(torch.float64)


@dataclass
class BlockStatsCollector:
    """Hooks on one block's linears that fill a LanguageStats per linear while the block runs.

    Layers that receive the very same input tensor (q/k/v, gate/up) share one computation.
    ``ffn`` maps the down-projection's name to the linear whose output decides activity.
    ``hessian_weights`` [L]: also sum w_l x x^T per input (see ``add_hessian``); None: no Hessian.
    Call ``begin_batch`` before each batch.

    ``stop_early``: when the block's outputs are not wanted, the statistics are complete as soon
    as every hooked linear has received its input, and the rest of the block (the FFN
    down-projection's product, the residual additions) is dead work: the hook that completes the
    batch raises ``StatsComplete``, which the caller catches. Only where the first batch showed
    every hook firing exactly once per forward (a layer called twice, or an expert that a batch
    may skip, keeps the full forward), so the statistics are the very same sums.
    """

    linears: dict[str, nn.Linear]
    n_langs: int
    ffn: tuple[str, str] | None = None
    track_sums: bool = False
    hessian_weights: Tensor | None = None
    lang_idx: Tensor | None = None
    stats: dict[str, LanguageStats] = field(default_factory=dict)
    _handles: list = field(default_factory=list)
    _last: tuple | None = None  # (input tensor, its per-batch LanguageStats delta)
    _last_hessian: tuple | None = None  # (input tensor, the Hessian it was last added to)
    stop_early: bool = False
    _fired: list = field(default_factory=list)  # hook events of the batch in progress
    _once: bool | None = None  # did the first batch fire every hook exactly once? None: not known yet

    def begin_batch(self, lang_idx: Tensor) -> None:
        """The next batch's languages; also closes the previous batch's hook count."""
        if self._once is None and self.lang_idx is not None:
            self._once = sorted(self._fired) == sorted(self._events())
        self.lang_idx, self._fired = lang_idx, []

    def _events(self) -> list[str]:
        """One forward's hook events if every hook fires once: each linear's input, the activity."""
        return list(self.linears) + (["active"] if self.ffn is not None else [])

    def _fire(self, event: str) -> None:
        self._fired.append(event)
        events = self._events()
        if (
            self.stop_early
            and self._once
            and len(self._fired) == len(events)
            and set(self._fired) == set(events)
        ):
            raise StatsComplete

    def __enter__(self) -> BlockStatsCollector:
        for name, lin in self.linears.items():
            self._handles.append(lin.register_forward_pre_hook(self._input_hook(name)))
        if self.ffn is not None:
            down, source = self.ffn
            self._handles.append(self.linears[source].register_forward_hook(self._active_hook(down)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._last = self._last_hessian = None

    def _input_hook(self, name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            x = args[0]
            if self._last is None or self._last[0] is not x:
                delta = LanguageStats.zeros(self.n_langs, x.shape[-1], x.device, self.track_sums)
                delta.add(x, self.lang_idx)
                self._last = (x, delta)
            delta = self._last[1]
            acc = self.stats.get(name)
            if acc is None:
                self.stats[name] = acc = LanguageStats.zeros(
                    self.n_langs, x.shape[-1], x.device, self.track_sums
                )
            acc.counts += delta.counts
            acc.sumsq += delta.sumsq
            if self.track_sums:
                acc.sums += delta.sums
            if self.hessian_weights is not None:
                self._add_hessian(acc, x)
            self._fire(name)

        return hook

    def _add_hessian(self, acc: LanguageStats, x: Tensor) -> None:
        """Add ``x`` to the linear's Hessian once: a linear fed the tensor just added elsewhere
        shares that Hessian (q/k/v, gate/up), so a block holds one per distinct input."""
        if self._last_hessian is not None and self._last_hessian[0] is x:
            if acc.hessian is None:
                acc.hessian = self._last_hessian[1]
                acc.hessian.users += 1
            if acc.hessian is self._last_hessian[1]:
                return
        if acc.hessian is None:
            acc.hessian = Hessian(torch.zeros(x.shape[-1], x.shape[-1], dtype=torch.float64, device=x.device))
        add_hessian(acc.hessian.matrix, x, self.lang_idx, self.hessian_weights)
        self._last_hessian = (x, acc.hessian)

    def _active_hook(self, down: str):
        def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
            acc = self.stats.get(down)
            if acc is None:  # the source runs before the down-projection: create it here
                self.stats[down] = acc = LanguageStats.zeros(
                    self.n_langs, output.shape[-1], output.device, self.track_sums
                )
            acc.add_active(output, self.lang_idx)
            self._fire("active")

        return hook

    def finish(self, prefix: str = "") -> dict[str, LanguageStats]:
        """The collected statistics, checked for NaN/Inf."""
        for name, st in self.stats.items():
            st.check_finite(prefix + name)
        return self.stats
