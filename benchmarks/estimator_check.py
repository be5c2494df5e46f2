"""Numerical check of the MAPO gradient estimator on an exactly enumerable environment (a script, not a test).

The environment is `mapo_jax.analysis.estimators.default_tree_bed()`: a tree of depth 3 with 3 actions per node (27
programs), a tabular softmax policy (39 logits), 5 reward-1 programs of which 2 form the memory buffer B.
Every estimator runs through the library: `make_loss` with the real weight functions and `jax.grad`, one
example per estimate, 50,000 independent estimates per estimator and setting (vmapped, jitted, fixed keys).
Two parameter settings: "early" with pi_B = 0.05 < alpha = 0.1 and "mid" with pi_B = 0.30 > alpha.

Checks (the script exits 1 if one fails):
  1. exact: enumerating every draw, E[estimate] equals the exact gradient of eq. 1, |error| <= 1e-5, for
     MAPO (alpha = 0; rejection-sampled, one-draw with sample_weight 1/(1 - pi_B), and enumerated
     buffer) and REINFORCE.
  2. Monte Carlo unbiasedness of MAPO (alpha = 0) at both settings: chi-square test of the mean of the
     estimates against the exact gradient with the exact (enumerated) covariance, chi2 = N d' S+ d on the
     covariance's range (rank = degrees of freedom); pass if p >= 1e-3. Per-coordinate max |z| is printed.
  3. Variance: total variance (trace of the covariance) of MAPO (1 buffer + 1 on-policy program) below
     REINFORCE's (2 on-policy programs) at the "mid" setting, from the Monte Carlo estimates. A sweep of
     pi_B (exact, by enumeration) shows where this holds; MAPO with the buffer enumerated and
     1 draw must be below REINFORCE with 1 draw at every pi_B of the sweep.
  4. alpha = 0.1: no bias while pi_B > alpha (exact bias <= 1e-5 and chi-square p >= 1e-3 at "mid"), a clear
     bias while pi_B < alpha (at "early": chi-square p < 1e-6 and |mean - exact| > 5 x the Monte Carlo noise
     floor sqrt(tr S / N)).
  5. The original code's one-draw rejection without correction ("mapo_original") has exactly the predicted
     mean grad O - pi_B grad O_outside (|error| <= 1e-5); its bias is printed.

    python benchmarks/estimator_check.py
"""

from __future__ import annotations

import sys
import time

import numpy as np

from common import write_result  # also puts the repository on sys.path

import jax  # noqa: E402

from mapo_jax.analysis import estimators as E  # noqa: E402

N_SEEDS = 50_000
SETTINGS = {"early": 0.05, "mid": 0.30}  # target pi_B of the parameter settings
PARAM_SEED = 0
ALPHA = 0.1
EXACT_TOL = 1e-5
P_UNBIASED = 1e-3
P_BIASED = 1e-6
SWEEP = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
# (estimator, alpha) pairs sampled at every setting; the key index gives common random numbers across alphas.
RUNS = (("mapo", 0.0), ("mapo", ALPHA), ("mapo_single_draw", 0.0), ("mapo_original", 0.0),
        ("mapo_enumerate", 0.0), ("reinforce", 0.0), ("reinforce_1", 0.0))


def run_setting(bed, name: str, target: float, key) -> dict:
    params = E.tree_params_with_buffer_prob(bed, target, seed=PARAM_SEED)
    pi_b = float(E.tree_buffer_prob(bed, params))
    exact = np.asarray(E.exact_return_gradient(bed, params), np.float64).ravel()
    outside = np.asarray(E.exact_return_gradient(bed, params, outside_buffer_only=True), np.float64).ravel()
    out = {"pi_buffer": pi_b, "exact_grad_norm": float(np.linalg.norm(exact)), "estimators": {}}
    for estimator, alpha in RUNS:
        mean, cov = E.enumerated_gradient_moments(bed, params, estimator, alpha=alpha)
        samples = np.asarray(E.monte_carlo_gradients(bed, params, estimator, key, N_SEEDS, alpha=alpha), np.float64)
        test = E.unbiasedness_test(samples, exact, cov)
        out["estimators"][f"{estimator}@alpha={alpha:g}"] = {
            "exact_bias_norm": float(np.linalg.norm(mean - exact)),
            "exact_total_variance": float(np.trace(cov)),
            "mc_total_variance": float(np.sum(samples.var(0, ddof=1))),
            "mc_error_norm": test["error_norm"],
            "mc_noise_floor": test["noise_floor"],
            "mc_max_abs_z": test["max_abs_z"],
            "chi2": test["chi2"],
            "dof": test["dof"],
            "p_value": test["p_value"],
        }
        if estimator == "mapo_original":
            predicted = exact - pi_b * outside
            out["original_prediction_error"] = float(np.linalg.norm(mean - predicted))
    return out


def sweep(bed) -> list:
    rows = []
    for target in SWEEP:
        params = E.tree_params_with_buffer_prob(bed, target, seed=PARAM_SEED)
        row = {"pi_buffer": float(E.tree_buffer_prob(bed, params))}
        for estimator in ("mapo", "mapo_single_draw", "mapo_original", "mapo_enumerate", "reinforce", "reinforce_1"):
            row[estimator] = float(np.trace(E.enumerated_gradient_moments(bed, params, estimator)[1]))
        rows.append(row)
    return rows


def main() -> int:
    start = time.time()
    bed = E.default_tree_bed()
    key = jax.random.key(20180612)
    results = {}
    for i, (name, target) in enumerate(SETTINGS.items()):
        results[name] = run_setting(bed, name, target, jax.random.fold_in(key, i))
    rows = sweep(bed)

    checks = {}
    for name, res in results.items():
        est = res["estimators"]
        for e in ("mapo@alpha=0", "mapo_single_draw@alpha=0", "mapo_enumerate@alpha=0", "reinforce@alpha=0", "reinforce_1@alpha=0"):
            checks[f"{name}: exact mean of {e} == grad O"] = est[e]["exact_bias_norm"] <= EXACT_TOL
        checks[f"{name}: MC mean of mapo@alpha=0 == grad O (chi2 p >= {P_UNBIASED:g})"] = est["mapo@alpha=0"]["p_value"] >= P_UNBIASED
        checks[f"{name}: mapo_original mean == grad O - pi_B grad O_out"] = res["original_prediction_error"] <= EXACT_TOL
    mid, early = results["mid"]["estimators"], results["early"]["estimators"]
    checks["mid: MC total variance mapo < reinforce (2 programs each)"] = (
        mid["mapo@alpha=0"]["mc_total_variance"] < mid["reinforce@alpha=0"]["mc_total_variance"])
    checks["sweep: exact variance mapo_enumerate < reinforce_1 at every pi_B"] = all(
        r["mapo_enumerate"] < r["reinforce_1"] for r in rows)
    a = f"mapo@alpha={ALPHA:g}"
    checks[f"mid (pi_B > alpha): {a} unbiased (exact, and chi2 p >= {P_UNBIASED:g})"] = (
        mid[a]["exact_bias_norm"] <= EXACT_TOL and mid[a]["p_value"] >= P_UNBIASED)
    checks[f"early (pi_B < alpha): {a} biased (chi2 p < {P_BIASED:g}, error > 5 noise floors)"] = (
        early[a]["p_value"] < P_BIASED and early[a]["mc_error_norm"] > 5 * early[a]["mc_noise_floor"])

    print(f"exactly enumerable tree: depth {bed.depth}, {bed.branching} actions/node, {bed.n_leaves} programs, "
          f"rewarded {bed.rewarded}, buffer {bed.buffer}; {N_SEEDS} estimates per row\n")
    for name, res in results.items():
        print(f"[{name}] pi_B = {res['pi_buffer']:.4f}   |grad O| = {res['exact_grad_norm']:.5f}")
        print(f"  {'estimator':26s} {'exact bias':>10s} {'MC |err|':>9s} {'noise':>8s} {'max|z|':>7s} "
              f"{'chi2':>9s} {'dof':>3s} {'p':>9s} {'Var exact':>9s} {'Var MC':>9s}")
        for e, f in res["estimators"].items():
            print(f"  {e:26s} {f['exact_bias_norm']:10.2e} {f['mc_error_norm']:9.5f} {f['mc_noise_floor']:8.5f} "
                  f"{f['mc_max_abs_z']:7.2f} {f['chi2']:9.2f} {f['dof']:3d} {f['p_value']:9.2e} "
                  f"{f['exact_total_variance']:9.5f} {f['mc_total_variance']:9.5f}")
        print()
    print("total variance (exact) vs pi_B:")
    print("  " + " ".join(f"{h:>16s}" for h in ["pi_B", *[k for k in rows[0] if k != "pi_buffer"], "mapo/reinforce"]))
    for r in rows:
        vals = [r["pi_buffer"], *[v for k, v in r.items() if k != "pi_buffer"], r["mapo"] / r["reinforce"]]
        print("  " + " ".join(f"{v:16.4f}" for v in vals))
    print()
    for c, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {c}")
    elapsed = time.time() - start
    print(f"\n{sum(checks.values())}/{len(checks)} checks passed in {elapsed:.1f} s")

    write_result("estimator_check", {
        "bed": {"depth": bed.depth, "branching": bed.branching, "rewarded": list(bed.rewarded), "buffer": list(bed.buffer)},
        "n_seeds": N_SEEDS,
        "alpha": ALPHA,
        "estimators": {k: v.description for k, v in E.ESTIMATORS.items()},
        "settings": results,
        "variance_sweep": rows,
        "checks": checks,
        "all_passed": all(checks.values()),
        "seconds": round(elapsed, 1),
    })
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
