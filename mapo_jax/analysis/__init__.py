"""Analyses behind the notebooks: gradient variance of MAPO's estimators (paper Appendix C) and run metrics.

`estimators` holds the exactly enumerable test bed (a tree of softmax decisions), the MAPO and REINFORCE
estimators run on it through the real loss, and a chi-squared test of their means; `variance` holds the
analytic formulas, `tree` measures them on the test bed, `policy_variance` on a real (toy or WTQ) policy,
`runs` reads training run directories for learning curves and the ablation table. Notebooks only call these
functions and plot.
"""
