"""Data: the bars of an asset (the bundled snapshot, or Alpaca through alpaca-py), checked.

assets.py reads assets.toml, sources.py and alpaca.py bring the bars, validation.py checks them:
the calendar itself, each bar with bar_checks.py, the series against itself with anomalies.py,
and against the previous model's closes with history.py.
"""
