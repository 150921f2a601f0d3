"""The simulator core: entities, events, the event loop and the static fast path.

No policies, no gymnasium, no torch: policies reach the server through the read-only
:class:`~mig_gym.sim.entities.ClusterView` and the dispatcher protocol in :mod:`.events`.
"""
