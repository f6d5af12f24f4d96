"""Pruning configuration as one frozen dataclass.

Every default carries a short *why*. M-Wanda's ``alpha`` and ``beta`` and CWL's ``owl_lambda``
were chosen on the embedded model's dev split by ``notebooks/06_ablations``; on a paper-scale
model they are a starting point, not a tuned value.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import Field, asdict, dataclass, field, fields

from mwanda.errors import UserError

# Implementations: mwanda.core.methods (its registry must name exactly these).
METHODS = ("magnitude", "wanda", "ria", "mwanda", "sparsegpt")
# Methods that take --language-aware (M-Wanda's statistics in their own score or saliency).
LANGUAGE_AWARE_METHODS = ("ria", "sparsegpt")
STRUCTURES = ("unstructured", "2:4", "4:8")
COMPARISONS = ("row", "layer")
ALLOCATIONS = ("uniform", "owl", "cwl")
VARIATIONS = ("rms_cv", "anova")


class ConfigError(UserError, ValueError):
    """A configuration value is invalid; the message names the fix."""


def param(
    default, help: str, *, low=None, high=None, open_low=False, open_high=False, choices=None, off=None
):
    """A PruneConfig field with its one declaration: default, help (CLI and docs), and the range
    or choices ``validate`` enforces. ``low``/``high`` are inclusive unless ``open_*``; ``off``:
    for a flag that is on by default, what turning it off does (the CLI's ``--no-...`` help)."""
    meta = dict(
        help=help, low=low, high=high, open_low=open_low, open_high=open_high, choices=choices, off=off
    )
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class PruneConfig:
    """What to prune and how. Field names follow the Wanda / OWL / RIA papers and their CLIs.

    Every field is declared once, here: the CLI (``mwanda prune``) and the experiment config
    (``ExperimentConfig``) take their flags, defaults, help and checks from these declarations.
    """

    # the paper's baseline; "mwanda" adds language-aware statistics; "sparsegpt" updates weights too
    method: str = param("wanda", "pruning method (scores, or SparseGPT's masks and updates)", choices=METHODS)
    # 50% unstructured is the paper's headline setting
    sparsity: float = param(0.5, "fraction of weights pruned", low=0.0, high=1.0, open_high=True)
    # or "2:4" / "4:8" (N:M, hardware-friendly); any N:M works
    structure: str = param("unstructured", f"'unstructured' or N:M, e.g. {', '.join(STRUCTURES[1:])}")
    # Wanda compares scores within each output row (its best variant)
    comparison: str = param("row", "compare scores within output rows or layers", choices=COMPARISONS)
    # "owl" or "cwl" give each block its own sparsity
    allocation: str = param("uniform", "layerwise sparsity allocation", choices=ALLOCATIONS)
    # M-Wanda weights, chosen by notebooks/06_ablations on the embedded dev split (60%): the
    # lowest mean increase of bits per byte over the grid alpha in {0, 0.5, 1, 2, 4}, beta in
    # {0, 0.5, 1, 2}. alpha helped (4.12% -> 3.76% at beta=0; 3.98% at alpha=4); beta never helped.
    alpha: float = param(2.0, "M-Wanda: weight of cross-lingual variation V_j", low=0.0)
    beta: float = param(0.0, "M-Wanda: weight of FFN activation probability P_j", low=0.0)
    # V_j definition: "rms_cv" (cheap, scale-free) or "anova"
    variation: str = param("rms_cv", "M-Wanda: definition of V_j", choices=VARIATIONS)
    # ria: M-Wanda's activation term; sparsegpt: language-balanced Hessian and M-Wanda's terms
    # in the saliency (this repository's extension)
    # (alpha and beta are M-Wanda's; for SparseGPT the dev split chose alpha = beta = 0, i.e. the
    # language-balanced Hessian alone: pass them explicitly, see sweep.SPARSEGPT_VARIANTS)
    language_aware: bool = param(
        False,
        "RIA or SparseGPT with M-Wanda's language statistics (SparseGPT: the dev split chose "
        "--alpha 0 --beta 0, the language-balanced Hessian alone)",
    )
    # RIA's paper default
    ria_a: float = param(0.5, "RIA activation exponent a", low=0.0)
    # OWL paper default; M = 0 would count every weight as an outlier
    owl_m: float = param(5.0, "OWL outlier threshold M (x mean score)", low=0.0, open_low=True)
    # OWL default; block sparsities span 2 x lambda, so lambda < 0.5 or they cannot fit in [0, 1)
    owl_lambda: float = param(0.08, "OWL/CWL spread lambda", low=0.0, high=0.5, open_high=True)
    # SparseGPT's paper default: 1% of the mean Hessian diagonal (raised 10x while H + lambda I
    # is not positive definite); 0 would leave a rank-deficient H uninvertible
    percdamp: float = param(
        0.01, "SparseGPT: dampening, a fraction of the mean Hessian diagonal", low=0.0, open_low=True
    )
    # SparseGPT's paper default: columns per lazy-update block (and mask selection)
    blocksize: int = param(128, "SparseGPT: columns per block", low=1)
    # prune block b on inputs from already-pruned blocks < b (as Wanda)
    sequential: bool = param(
        True,
        "statistics from the already-pruned blocks' outputs",
        off="collect every block's statistics from the dense model in one pass instead of from the "
        "already-pruned blocks' outputs (default: sequential)",
    )
    include: tuple[str, ...] = param((), "fnmatch patterns of linear names to prune (empty: all)")
    exclude: tuple[str, ...] = param((), "fnmatch patterns of linear names to keep dense")
    # recorded for provenance; calibration sampling uses it
    seed: int = param(0, "random seed of calibration sampling", low=0)

    def __post_init__(self) -> None:
        for name in ("include", "exclude"):  # lists from YAML or JSON are fine too
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        validate(self)

    @property
    def nm(self) -> tuple[int, int] | None:
        """(n, m) for N:M structures, else None."""
        if self.structure == "unstructured":
            return None
        n, m = (int(v) for v in self.structure.split(":"))
        return n, m

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _type_name(tp) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is typing.Literal:
        return " or ".join(repr(a) for a in args)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        null = " or null" if type(None) in typing.get_args(tp) else ""
        return " or ".join(_type_name(a) for a in args) + null
    if typing.get_origin(tp) is tuple:
        return f"a list of {_type_name(args[0]).removeprefix('a ').removeprefix('an ')}s"
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _is_type(value: object, tp) -> bool:
    """``value`` has type ``tp`` (int, float, str, bool, Literal, X | None, tuple[X, ...]); bools are not
    numbers here, so ``nsamples: true`` in YAML is caught, and ints count as floats."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return any(_is_type(value, a) for a in typing.get_args(tp))
    if origin is tuple:
        return isinstance(value, tuple) and all(_is_type(v, typing.get_args(tp)[0]) for v in value)
    if tp is type(None):
        return value is None
    if tp in (int, float) and isinstance(value, bool):
        return False
    if tp is float:
        return isinstance(value, (int, float))
    return isinstance(value, tp)


def check_types(obj: object) -> None:
    """Every field of dataclass ``obj`` has its annotated type (YAML gives strings for typos)."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value = getattr(obj, f.name)
        if not _is_type(value, hints[f.name]):
            raise ConfigError(f"{f.name}={value!r} must be {_type_name(hints[f.name])}.")


def check_range(f: Field, value: object) -> None:
    """``value`` is finite and inside ``f``'s declared range or choices (see ``param``)."""
    meta = f.metadata
    if meta.get("choices") is not None:
        _check_choice(f.name, value, meta["choices"])
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    low, high = meta.get("low"), meta.get("high")
    if low is None and high is None:
        return
    too_low = low is not None and (value <= low if meta["open_low"] else value < low)
    too_high = high is not None and (value >= high if meta["open_high"] else value > high)
    if not math.isfinite(value) or too_low or too_high:
        lo = "" if low is None else f"{low:g} {'<' if meta['open_low'] else '<='} "
        hi = "" if high is None else f" {'<' if meta['open_high'] else '<='} {high:g}"
        raise ConfigError(f"{f.name}={value!r} must be a finite number with {lo}{f.name}{hi}.")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not supported; choose one of {', '.join(choices)}.")


def _parse_nm(structure: str) -> tuple[int, int]:
    try:
        n, m = (int(v) for v in structure.split(":"))
    except ValueError:
        raise ConfigError(f"structure={structure!r} is not 'unstructured' or 'N:M' (e.g. '2:4').") from None
    if not 0 < n < m:
        raise ConfigError(f"structure={structure!r}: N:M needs 0 < n < m (e.g. 2:4 or 4:8).")
    return n, m


def validate(cfg: PruneConfig) -> None:
    """Raise ConfigError with a fix for any invalid field; called on construction."""
    check_types(cfg)
    for f in fields(cfg):
        check_range(f, getattr(cfg, f.name))
    s = cfg.sparsity
    if cfg.allocation != "uniform" and not (s - 2 * cfg.owl_lambda >= 0 and s + 2 * cfg.owl_lambda < 1):
        raise ConfigError(
            f"allocation={cfg.allocation!r} gives block sparsities in sparsity +- 2 x lambda, which "
            f"for sparsity={s:g} and lambda={cfg.owl_lambda:g} can leave [0, 1); "
            f"set --lambda below {min(s, 1 - s) / 2:g}."
        )
    if cfg.structure != "unstructured":
        n, m = _parse_nm(cfg.structure)
        if abs(s - n / m) > 1e-9:
            raise ConfigError(
                f"structure {cfg.structure} prunes exactly {n}/{m} = {n / m:g} of the weights; "
                f"set --sparsity {n / m:g} (got {s})."
            )
        if cfg.allocation != "uniform":
            raise ConfigError(
                f"allocation={cfg.allocation!r} gives blocks different sparsities, which N:M "
                "cannot express; use --allocation uniform with N:M structures."
            )
    if cfg.language_aware and cfg.method not in LANGUAGE_AWARE_METHODS:
        raise ConfigError(
            "language_aware only applies to method='ria' (RIA with M-Wanda's activation term) or "
            "method='sparsegpt' (language-balanced Hessian); method='mwanda' is already language-aware."
        )
    if cfg.method == "sparsegpt":
        _validate_sparsegpt(cfg)


def _validate_sparsegpt(cfg: PruneConfig) -> None:
    """SparseGPT's N:M groups must not straddle its blocks, and its Hessians come from the pruned
    prefix: holding every block's dense Hessians at once (--no-sequential) would cost L x d^2."""
    if cfg.nm is not None and cfg.blocksize % cfg.nm[1]:
        raise ConfigError(
            f"structure {cfg.structure} groups {cfg.nm[1]} inputs, which do not tile blocks of "
            f"blocksize={cfg.blocksize}; set --blocksize to a multiple of {cfg.nm[1]} (e.g. 128)."
        )
    if not cfg.sequential:
        raise ConfigError(
            "method='sparsegpt' is sequential only (every block's dense Hessians at once would not fit "
            "in memory); drop --no-sequential."
        )


def config_fields() -> list[str]:
    return [f.name for f in fields(PruneConfig)]


@dataclass(frozen=True)
class CalibConfig:
    """How calibration sequences are drawn (balanced over languages)."""

    nsamples: int = 128  # Wanda / SparseGPT use 128 sequences
    seqlen: int = 256  # the embedded model's context; the paper profile uses min(2048, context)
    seed: int = 0  # seeds the random windows, so calibration is exactly reusable
    languages: tuple[str, ...] = field(default=())  # empty: every language given

    def __post_init__(self) -> None:
        if not isinstance(self.nsamples, int) or self.nsamples < 1:
            raise ConfigError(f"nsamples={self.nsamples!r} must be a positive integer.")
        if not isinstance(self.seqlen, int) or self.seqlen < 2:
            raise ConfigError(f"seqlen={self.seqlen!r} must be an integer >= 2.")
