"""Learned agents (the ``train`` extra): SB3 training, policy networks, hyperparameters.

Importing this package does not import torch; its modules do.
"""
