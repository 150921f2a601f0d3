"""Partitioners: PARIS (:mod:`.paris`), PARIS_tuned, periodic PARIS and the baselines."""
