"""logferry: carry logs and files from devices through a relay to a collector, and prove nothing went missing.

The package is layered so that the architecture shows in the tree:

- ``protocol``: the sans-IO logferry/1 core (bytes in, events out; no sockets, no clock);
- ``transport``: asyncio adapters that move the core's bytes over TCP;
- ``store``: durable SQLite stores (spool, journal, records), one writer thread each;
- ``pipeline`` and ``inputs``: rules and the sources that produce records;
- ``roles``: agent, relay and collector, which only compose the pieces above;
- ``cli``: the ``logferry`` command.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
