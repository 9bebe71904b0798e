"""Benchmarks of meetup-edge, each printing ratios against a baseline measured in the same run.

``python -m bench`` (or ``./dev bench``) runs them all; see ``bench/__main__.py``.
"""
