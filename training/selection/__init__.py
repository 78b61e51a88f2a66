"""Selection: the rolling-origin backtest, the scores, the choice of a configuration and the gate.

backtest.py runs every configuration at every cutoff, evaluation.py scores, chooses and gates,
interval_checks.py judges the intervals.
"""
