"""golden.flow: Wanda scores, outlier statistics, and the exact N:M choice (DP against an
exhaustive search), then FLOW applied to SmolLM2."""

import math

import numpy as np
import pytest

from golden.flexcim import DENSE, NM_CANDIDATES
from golden.flow import (
    LayerStats,
    choose_nm,
    choose_nm_exhaustive,
    flow_plan,
    flow_variant,
    mean_sparsity,
    outlier_stats,
    uniform_variant,
    wanda_scores,
)


def test_wanda_scores_hand_case():
    w = np.array([[1.0, -2.0], [-3.0, 0.5]])
    assert np.array_equal(wanda_scores(w, np.array([2.0, 4.0])), [[2.0, 8.0], [6.0, 2.0]])
    with pytest.raises(ValueError, match="input_norms"):
        wanda_scores(w, np.ones(3))


def test_outlier_stats_hand_case():
    scores = np.ones((2, 16))
    scores[0, [2, 5, 11]] = 40.0      # gaps 3 and 6
    scores[1, [7]] = 40.0             # alone in its row: no gap
    share, locality = outlier_stats(scores, multiple=5.0)
    mean = scores.mean()
    assert 40.0 > 5 * mean > 1.0
    assert share == 4 / 32
    assert locality == pytest.approx(1 / 4.5)
    assert outlier_stats(np.ones((3, 8)))[1] == 0.0
    with pytest.raises(ValueError, match="multiple"):
        outlier_stats(scores, multiple=0)


def random_stats(rng, layers, equal=False):
    sizes = [4, 4, 1, 8, 3, 2]
    return {f"l{i}": LayerStats(float(rng.random()), float(rng.random()),
                                1000 * (4 if equal else sizes[i % len(sizes)]))
            for i in range(layers)}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("target", [0.5, 0.7, 0.8])
def test_dp_equals_exhaustive(seed, target):
    rng = np.random.default_rng(seed)
    stats = random_stats(rng, 4)
    dense = ["l0"] if seed % 2 and target < 0.8 else []
    tolerance = 0.1
    plan = choose_nm(stats, target, dense=dense, locality_weight=0.5 + seed / 4,
                     tolerance=tolerance)
    best, choices = choose_nm_exhaustive(stats, target, dense=dense,
                                         locality_weight=0.5 + seed / 4, tolerance=tolerance)
    assert plan.cost == pytest.approx(best, abs=1e-9)
    assert target - 1e-12 <= plan.sparsity <= target + tolerance + 1e-12
    assert plan.sparsity == pytest.approx(
        mean_sparsity(plan.choices, {k: s.params for k, s in stats.items()}))
    for name in dense:
        assert plan.choices[name] == DENSE
    assert all(nm in NM_CANDIDATES for k, nm in plan.choices.items() if k not in dense)
    assert math.isfinite(best) and choices


def test_denser_choice_follows_outlier_share():
    """Equal layer sizes, no locality term: a layer with more outliers is never sparser
    (an exchange argument makes any optimum monotone)."""
    rng = np.random.default_rng(11)
    stats = random_stats(rng, 9, equal=True)
    plan = choose_nm(stats, 0.7, locality_weight=0.0, tolerance=0.05)
    order = sorted(stats, key=lambda k: stats[k].outlier_share)
    density = [plan.choices[k][0] / plan.choices[k][1] for k in order]
    assert density == sorted(density) and density[0] < density[-1]


def test_group_size_follows_locality():
    """Same outlier share everywhere, 50%: M grows with the locality rank."""
    stats = {f"l{i}": LayerStats(0.1, d, 1000) for i, d in enumerate([0.1, 0.5, 0.9])}
    plan = choose_nm(stats, 0.5)
    assert [plan.choices[f"l{i}"] for i in range(3)] == [(2, 4), (4, 8), (8, 16)]


def test_infeasible_and_bad_targets():
    stats = {"a": LayerStats(0.1, 0.1, 100), "b": LayerStats(0.1, 0.1, 900)}
    with pytest.raises(ValueError, match="budget"):
        choose_nm(stats, 0.5, dense=["b"])
    with pytest.raises(ValueError, match="target"):
        choose_nm(stats, 1.0)
    with pytest.raises(ValueError, match="dense"):
        choose_nm(stats, 0.5, dense=["zzz"])
    with pytest.raises(ValueError, match="sparsity in"):
        choose_nm(stats, 0.6, tolerance=0.01)       # 0.5, 0.5625, 0.625... of 1000 weights
    with pytest.raises(ValueError, match="tolerance"):
        choose_nm(stats, 0.5, tolerance=-1)


def test_sparsity_stays_within_tolerance():
    stats = {f"l{i}": LayerStats(0.01 * i, 0.02 * (7 - i), 1000 * (1 + i % 3)) for i in range(8)}
    for target in (0.5, 0.6, 0.7, 0.75):
        plan = choose_nm(stats, target, tolerance=0.02)
        assert target - 1e-12 <= plan.sparsity <= target + 0.02 + 1e-12


def test_flow_on_smollm2_meets_target_and_runs():
    from golden.models.evaluate import load_eval_tokens, perplexity
    from golden.models.quant import calibrate_input_norms
    from golden.models.smollm2 import SmolLM2

    model = SmolLM2()
    tokens = load_eval_tokens(40)
    norms = calibrate_input_norms(model, tokens[:16])
    plan = flow_plan(model.weights, norms, 0.7, dense_first_last=True)
    assert len(plan.choices) == 210 and 0.7 <= plan.sparsity <= 0.71
    assert all(plan.choices[f"blk.{b}.attn_q"] == DENSE for b in (0, 29))
    assert len(set(plan.choices.values())) > 2
    flow = model.with_variant(flow_variant(plan, norms))
    name = "blk.5.ffn_down"
    n, m = plan.choices[name]
    w = flow.prepared[name].weight
    kept = (w.reshape(w.shape[0], -1, m) != 0).sum(axis=-1)
    assert kept.max() <= n
    uniform = model.with_variant(uniform_variant(2, 4, norms))
    ppl = [perplexity(x, tokens[16:], window=24) for x in (model, uniform, flow)]
    assert all(math.isfinite(p) and p > 1 for p in ppl)
    assert ppl[0] < ppl[2]          # pruning 70% hurts
