"""Reconciliation: proving that what the relay forwarded is what the collector holds, and finding the rest.

``summary`` and ``descent`` are pure (no I/O); ``tables`` holds the SQL both stores share; ``relay_side``
drives an exchange and keeps the missing list; ``collector_side`` answers; ``gaps`` watches agents' seqs.
Import the submodules directly: this package imports nothing, so stores can use ``tables`` without cycles.
"""
