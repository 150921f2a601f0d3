"""mig_gym benchmarks: ``python benchmarks/run.py`` (``make bench``)."""
