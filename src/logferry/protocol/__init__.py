"""logferry/1: the sans-IO protocol core. No sockets, no asyncio, no clock: time is passed in."""
