"""FLOW: a per-layer choice of N:M sparsity from outlier share and locality (arXiv 2504.14365).

For each linear layer, weights are scored as Wanda does, ``score[o, k] = |W[o, k]| *
||X[:, k]||_2`` with ``X`` the layer's input over calibration tokens
(:func:`wanda_scores`). Two statistics of those scores drive the choice
(:func:`outlier_stats`):

* the **outlier share** ``O``: the fraction of scores above ``multiple`` times the layer's
  mean score;
* the **outlier locality** ``D``: the inverse of the mean distance (in input positions)
  between consecutive outliers of the same output row, over every row with two or more
  outliers (0 when no row has two).

A layer with many outliers should keep more of its weights (a larger ``N/M``, "O sets N"),
and a layer whose outliers sit close together needs wide groups so that a cluster still fits
the ``N`` kept slots of one group (a larger ``M``, "D sets M"). :func:`choose_nm` turns this
into a small integer programme and solves it exactly by dynamic programming over the
parameter budget:

* each layer ``i`` with ``P_i`` weights picks ``(N, M)`` from :data:`golden.flexcim.NM_CANDIDATES`
  (or stays dense when it is listed in ``dense``);
* constraint: the parameter-weighted mean sparsity ``sum_i P_i (1 - N_i/M_i) / sum_i P_i``
  (dense layers count as 0) is at least ``target`` and at most ``target + tolerance`` (so that
  FLOW is compared with uniform N:M at the same sparsity; with every candidate at least 50%
  sparse, a 50% target leaves only the choice of ``M``);
* objective: minimise ``sum_i (log2(N_i/M_i) - a_i)^2 + locality_weight * (log2 M_i - b_i)^2``
  with the targets ``a_i = log2(1 - target) + spread * u_i`` and ``b_i = 2 + 2 * v_i``, where
  ``u_i`` in [-1, 1] is the rank of ``O_i`` among the layers and ``v_i`` in [0, 1] the rank of
  ``D_i``. (Ranks, so the choice does not depend on the scale of either statistic.)

:class:`FlowPrunedLinear` applies a choice to a model (``golden.models`` linear-layer
interface), and :func:`flow_variant` / :func:`uniform_variant` build the variants the bench
evaluates.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from golden.flexcim import DENSE, NM_CANDIDATES, check_mode
from golden.models.interfaces import CausalAttention, FloatKV, Variant
from golden.models.quant import FLOAT_LAYERS, prune_nm, unprune

__all__ = ["LayerStats", "FlowPlan", "wanda_scores", "outlier_stats", "layer_stats",
           "choice_cost", "choose_nm", "choose_nm_exhaustive", "mean_sparsity",
           "FlowPrunedLinear", "flow_plan", "flow_variant", "uniform_variant",
           "smollm2_layer_names"]


@dataclass(frozen=True)
class LayerStats:
    """Statistics of one layer's scores: outlier share, outlier locality, weight count."""

    outlier_share: float
    locality: float
    params: int


@dataclass(frozen=True)
class FlowPlan:
    """FLOW's result: ``choices[name] = (n, m)`` (``(1, 1)`` for dense), the statistics it
    used, the target, the sparsity reached and the value of the objective."""

    choices: dict[str, tuple[int, int]]
    stats: dict[str, LayerStats]
    target: float
    sparsity: float
    cost: float
    dense: frozenset = field(default_factory=frozenset)


def wanda_scores(weight: np.ndarray, input_norms: np.ndarray) -> np.ndarray:
    """``|W[o, k]| * norm[k]`` in float64 (``input_norms``: L2 norm of each input feature)."""
    weight = np.asarray(weight, np.float64)
    norms = np.asarray(input_norms, np.float64)
    if norms.shape != (weight.shape[1],):
        raise ValueError(f"input_norms shape {norms.shape} does not match weight {weight.shape}")
    return np.abs(weight) * norms[None, :]


def outlier_stats(scores: np.ndarray, multiple: float = 5.0) -> tuple[float, float]:
    """``(O, D)`` of a score matrix (out, in): the share of scores above ``multiple`` times
    the mean score, and 1 / (mean distance between consecutive outlier positions of a row,
    over all rows), or 0.0 when no row has two outliers."""
    if not multiple > 0:
        raise ValueError(f"multiple must be positive, not {multiple!r}")
    scores = np.asarray(scores, np.float64)
    outliers = scores > multiple * scores.mean()
    share = float(outliers.mean())
    rows, cols = np.nonzero(outliers)          # row-major: positions sorted within each row
    if rows.size < 2:
        return share, 0.0
    same_row = rows[1:] == rows[:-1]
    gaps = np.diff(cols)[same_row]
    if gaps.size == 0:
        return share, 0.0
    return share, float(1.0 / gaps.mean())


def layer_stats(weight: np.ndarray, input_norms: np.ndarray, multiple: float = 5.0
                ) -> LayerStats:
    """:class:`LayerStats` of one layer from its weight and its inputs' L2 norms."""
    share, locality = outlier_stats(wanda_scores(weight, input_norms), multiple)
    return LayerStats(share, locality, int(np.asarray(weight).size))


def _ranks(values: list[float]) -> np.ndarray:
    """Ranks in [0, 1] (ties share their mean rank); 0.5 for a single value."""
    values = np.asarray(values, np.float64)
    if values.size == 1:
        return np.array([0.5])
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size)
    ranks[order] = np.arange(values.size)
    for v in np.unique(values):
        same = values == v
        ranks[same] = ranks[same].mean()
    return ranks / (values.size - 1)


def choice_cost(nm: tuple[int, int], density_target: float, group_target: float,
                locality_weight: float) -> float:
    """The objective term of one layer for ``nm`` (see the module docstring)."""
    n, m = nm
    return ((math.log2(n / m) - density_target) ** 2
            + locality_weight * (math.log2(m) - group_target) ** 2)


def _targets(stats: Mapping[str, LayerStats], names: list[str], target: float,
             spread: float) -> tuple[np.ndarray, np.ndarray]:
    u = _ranks([stats[k].outlier_share for k in names]) * 2 - 1
    v = _ranks([stats[k].locality for k in names])
    return math.log2(1 - target) + spread * u, 2 + 2 * v


def _check_target(target: float) -> None:
    if not 0 <= target < 1:
        raise ValueError(f"target sparsity must be in [0, 1), not {target!r}")


def mean_sparsity(choices: Mapping[str, tuple[int, int]], params: Mapping[str, int]) -> float:
    """Parameter-weighted mean sparsity ``sum P (1 - N/M) / sum P``."""
    total = sum(params[k] for k in choices)
    return sum(params[k] * (1 - n / m) for k, (n, m) in choices.items()) / total


def choose_nm(stats: Mapping[str, LayerStats], target: float, *,
              dense: Iterable[str] = (), spread: float = 1.0, locality_weight: float = 1.0,
              tolerance: float = 0.01,
              candidates: Iterable[tuple[int, int]] = NM_CANDIDATES) -> FlowPlan:
    """The exact FLOW choice (module docstring) by dynamic programming.

    Kept fractions ``N/M`` are multiples of ``1/16`` and weight counts are multiples of their
    greatest common divisor ``g``, so the kept weights are an integer number of ``g/16`` units
    and the constraint is a knapsack over at most ``16 * sum P / g`` states, solved exactly.
    Raises ``ValueError`` if no choice meets ``target``.
    """
    _check_target(target)
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be at least 0, not {tolerance!r}")
    candidates = tuple(candidates)
    for n, m in candidates:
        check_mode(n, m)
    if any(16 * n % m for n, m in candidates):
        raise ValueError("every candidate's N/M must be a multiple of 1/16")
    dense = frozenset(dense)
    unknown = dense - set(stats)
    if unknown:
        raise ValueError(f"dense layers {sorted(unknown)} have no statistics")
    names = [k for k in stats if k not in dense]
    if not names:
        raise ValueError("every layer is dense: nothing to choose")
    g = math.gcd(*(stats[k].params for k in stats))
    units = {k: stats[k].params // g for k in stats}
    total_units = sum(units.values())
    # kept sixteenths: sum_i units_i * kept16_i <= (1 - target) * 16 * total_units
    budget = math.floor((1 - target) * 16 * total_units + 1e-9)
    floor_units = math.ceil((1 - target - tolerance) * 16 * total_units - 1e-9)
    budget -= 16 * sum(units[k] for k in dense)
    floor_units = max(0, floor_units - 16 * sum(units[k] for k in dense))
    if budget < 0:
        raise ValueError(f"the dense layers alone exceed the budget of target {target}")
    a, b = _targets(stats, names, target, spread)
    inf = np.inf
    cost = np.full(budget + 1, inf)
    cost[0] = 0.0
    picks = np.zeros((len(names), budget + 1), np.int16)
    for i, name in enumerate(names):
        new = np.full(budget + 1, inf)
        pick = np.full(budget + 1, -1, np.int16)
        for c, (n, m) in enumerate(candidates):
            step = units[name] * (16 * n // m)
            if step > budget:
                continue
            term = choice_cost((n, m), a[i], b[i], locality_weight)
            shifted = cost[:budget + 1 - step] + term
            better = shifted < new[step:]
            new[step:][better] = shifted[better]
            pick[step:][better] = c
        cost, picks[i] = new, pick
    cost[:floor_units] = inf
    if not np.isfinite(cost).any():
        raise ValueError(f"no choice of {candidates} has a sparsity in [{target}, "
                         f"{target + tolerance}]")
    state = int(np.argmin(cost))
    best = float(cost[state])
    choices: dict[str, tuple[int, int]] = {}
    for i in range(len(names) - 1, -1, -1):
        n, m = candidates[picks[i, state]]
        choices[names[i]] = (n, m)
        state -= units[names[i]] * (16 * n // m)
    assert state == 0
    choices = {k: (DENSE if k in dense else choices[k]) for k in stats}
    params = {k: stats[k].params for k in stats}
    return FlowPlan(choices, dict(stats), target, mean_sparsity(choices, params), best, dense)


def choose_nm_exhaustive(stats: Mapping[str, LayerStats], target: float, *,
                         dense: Iterable[str] = (), spread: float = 1.0,
                         locality_weight: float = 1.0, tolerance: float = 0.01,
                         candidates: Iterable[tuple[int, int]] = NM_CANDIDATES
                         ) -> tuple[float, dict[str, tuple[int, int]]]:
    """The same programme by trying every assignment (a reference for a few layers):
    ``(best cost, choices)``, ``(inf, {})`` when nothing is feasible."""
    candidates = tuple(candidates)
    dense = frozenset(dense)
    names = [k for k in stats if k not in dense]
    a, b = _targets(stats, names, target, spread)
    params = {k: stats[k].params for k in stats}
    best, best_choice = math.inf, {}
    for combo in itertools.product(candidates, repeat=len(names)):
        choices = dict(zip(names, combo, strict=True)) | {k: DENSE for k in dense}
        if not target - 1e-12 <= mean_sparsity(choices, params) <= target + tolerance + 1e-12:
            continue
        cost = sum(choice_cost(nm, a[i], b[i], locality_weight) for i, nm in enumerate(combo))
        if cost < best - 1e-12:
            best, best_choice = cost, choices
    return best, best_choice


# --- applying a choice to SmolLM2 -------------------------------------------------------------

def smollm2_layer_names(n_layers: int = 30) -> list[str]:
    """``blk.{i}.{linear}`` of every block linear layer, in model order."""
    from golden.models.smollm2 import LINEAR_NAMES

    return [f"blk.{i}.{name}" for i in range(n_layers) for name in LINEAR_NAMES]


def flow_plan(weights: Mapping[str, np.ndarray], input_norms: Mapping[str, np.ndarray],
              target: float, *, n_layers: int = 30, dense_first_last: bool = False,
              multiple: float = 5.0, spread: float = 1.0, locality_weight: float = 1.0,
              tolerance: float = 0.01) -> FlowPlan:
    """FLOW on SmolLM2 weights (GGUF names) with calibration input norms
    (:func:`golden.models.quant.calibrate_input_norms`). ``dense_first_last`` keeps the
    linear layers of the first and the last block dense."""
    names = smollm2_layer_names(n_layers)
    stats = {k: layer_stats(weights[k + ".weight"], input_norms[k], multiple) for k in names}
    dense = [k for k in names if k.startswith(("blk.0.", f"blk.{n_layers - 1}."))] \
        if dense_first_last else []
    return choose_nm(stats, target, dense=dense, spread=spread,
                     locality_weight=locality_weight, tolerance=tolerance)


@dataclass(frozen=True)
class _Dense:
    weight: np.ndarray


class FlowPrunedLinear:
    """Linear layers pruned N:M per layer (``choices[name]``; dense when absent or 1:1) with
    Wanda scores from ``input_norms``, the pruned weights used in float32. The lm head
    (``golden.models.quant.FLOAT_LAYERS``) stays dense."""

    def __init__(self, choices: Mapping[str, tuple[int, int]],
                 input_norms: Mapping[str, np.ndarray], name: str = "flow"):
        for n, m in choices.values():
            check_mode(n, m)
        self.choices, self.input_norms, self.name = dict(choices), input_norms, name

    def prepare(self, name: str, weight: np.ndarray) -> object:
        nm = self.choices.get(name, DENSE)
        if name in FLOAT_LAYERS or nm == DENSE:
            return _Dense(weight)
        n, m = nm
        values, indices = prune_nm(weight, n, m, wanda_scores(weight, self.input_norms[name]))
        return _Dense(unprune(values, indices, n, m))

    def apply(self, prepared: _Dense, x: np.ndarray) -> np.ndarray:
        return x @ prepared.weight.T


def flow_variant(plan: FlowPlan, input_norms: Mapping[str, np.ndarray],
                 name: str | None = None) -> Variant:
    """A ``golden.models`` variant with FLOW's per-layer N:M."""
    name = name or f"flow-{round(plan.target * 100)}"
    return Variant(name, FlowPrunedLinear(plan.choices, input_norms, name), FloatKV(),
                   CausalAttention())


def uniform_variant(n: int, m: int, input_norms: Mapping[str, np.ndarray],
                    n_layers: int = 30) -> Variant:
    """Every block linear layer ``n:m`` with Wanda scores (the same scoring as FLOW)."""
    choices = {k: (n, m) for k in smollm2_layer_names(n_layers)}
    return Variant(f"{n}:{m}-wanda", FlowPrunedLinear(choices, input_norms, f"{n}:{m}"),
                   FloatKV(), CausalAttention())
