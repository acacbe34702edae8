"""The operator console: NiceGUI pages mounted on each server role's own FastAPI app (same port as the API).

Layout — one module per page area, a small layout module, and the actions every page shares:

    mount.py      ui.run_with on the role's app; the relay's and the collector's page frames (roots)
    layout.py     header, page frame, confirm dialog, how times / levels / sizes are shown
    actions.py    the operator actions (audited as their REST routes) and the reads behind the tables
    overview.py   relay: collector link, held / outbox sizes, fate counters, connected devices
    held.py       relay: held items — paged table, filters, detail, release / delete with confirmation
    missing.py    relay: the missing list — resend, acknowledge, reconcile now
    search.py     collector: full-text search with source / level filters, paged

Every console action is also a REST call and a CLI command, and runs through the same live objects
(journal, reconciler, record store, audit log). Only ``logferry.api.apps`` imports this package, when the
API starts: nothing here may be imported by a role at start-up (NiceGUI takes about a second to load).
"""
