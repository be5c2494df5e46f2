"""Analyses behind the notebooks: gradient variance of MAPO's estimators (paper Appendix C) and run metrics.

`variance` holds the analytic formulas, `tree` measures them on the exactly enumerable test bed,
`policy_variance` on a real (toy or WTQ) policy, `runs` reads training run directories for learning curves
and the ablation table. Notebooks only call these functions and plot.
"""
