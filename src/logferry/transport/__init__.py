"""asyncio adapters that move the sans-IO protocol core's bytes over TCP. Network errors are caught here."""
