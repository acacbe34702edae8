"""``logferry demo``: a collector, a relay and simulated devices on one machine, with live progress."""
