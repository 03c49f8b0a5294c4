"""What the producer and the worker share: records, parsing, policy, configuration.

Nothing in this package imports from the rest of pmtabounce.
"""
