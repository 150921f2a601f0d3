"""Runs: building a simulation from a scenario and a policy (:mod:`.build`), experiments over
policies, seeds and loads (:mod:`.experiments`) and the backends that fan them out
(:mod:`.backends`)."""
