"""Dispatchers: ELSA (:mod:`.elsa`) and the baseline rules (:mod:`.baselines`)."""
