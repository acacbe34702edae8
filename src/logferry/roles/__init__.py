"""The three roles. Each only composes protocol, transport, stores and pipeline; none holds logic of its own
that another layer could own."""
