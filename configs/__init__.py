"""Experiment configs: ``base.py`` holds the defaults, each experiment derives from it."""
