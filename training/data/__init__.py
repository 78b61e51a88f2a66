"""Data: the bars of an asset (the bundled snapshot, or Alpaca through alpaca-py), checked.

assets.py reads assets.toml, sources.py and alpaca.py bring the bars, validation.py checks them.
"""
