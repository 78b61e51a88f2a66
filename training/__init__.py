"""Training: daily bars -> validated closes -> backtest, choice and gate -> fitted Prophet -> model pair.

sources.py and alpaca.py bring the bars (the bundled snapshot, or Alpaca through alpaca-py),
validation.py checks them, configs.py holds the candidate configurations and fits them,
backtest.py and evaluation.py run the rolling-origin backtest, choose and gate the model,
intervals.py builds the served intervals from the closes and interval_checks.py judges them,
pipeline.py trains one asset end to end, report.py writes reports/. The model pair itself is
defined in artifact/.
"""
