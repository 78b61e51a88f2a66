"""Models: the Prophet configurations that can be served and the calibrated interval they carry.

configs.py holds the candidate configurations and fits them; intervals.py builds the served
intervals from the closes alone.
"""
