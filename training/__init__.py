"""Training: daily bars -> validated closes -> backtest, choice and gate -> fitted Prophet -> model pair.

Grouped by role: data/ brings and checks the bars, models/ holds the configurations that can be
served and their intervals, selection/ backtests, scores, chooses and gates. pipeline.py trains
one asset end to end, report.py writes reports/, workers.py and model_folder.py run the work and
guard the folder. The model pair itself is defined in artifact/.
"""
