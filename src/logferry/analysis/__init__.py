"""Log analysis at the collector: message templates mined with Drain (drain3), their counts over time,
error rates per source, and alerts when a new template appears or an error rate jumps.

- ``settings.py``: the analysis options as one frozen value, built from the collector's config.
- ``miner.py``: the template miner over a batch of stored records (pure: no I/O, no clock).
- ``alerts.py``: when an error rate counts as a jump (pure).
- ``store.py``: ``analysis.db`` — templates, time buckets, alerts, the cursor and drain3's state.
- ``follower.py``: the task that follows the record store behind ingestion and feeds the above.

Nothing here writes to the record store: analysis only ever reads stored records.
"""
