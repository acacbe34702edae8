"""The operator console: NiceGUI pages mounted on each server role's own FastAPI app (same port as the API).

Layout — one module per page area, a small layout module, and the actions every page shares:

    mount.py      ui.run_with on the role's app; the relay's and the collector's page frames (roots)
    layout.py     header, page frame, confirm and detail dialogs, the Pager under every table, how times /
                  levels / sizes are shown
    time_range.py the time filter of Held, Audit and Search: a quick range or from/to (UTC)
    i18n.py       t() and the Korean catalogs each page registers; the language cookie
    access.py     who is signed in (viewer / operator) and require_operator(), for every write
    signin.py     the /login page, /_signin (ticket → session cookie) and /_signout
    actions.py    the operator actions (the REST routes' own functions, api/audited.py) and table reads
    overview.py   relay: rates in/out with live charts, lag, held / outbox sizes, fates, devices
    held.py       relay: held items — paged table, filters (incl. time), release / delete with confirmation
    held_detail.py relay: a held item's row and detail (message, fields, rule, what was redacted)
    missing.py    relay: the missing list by source — resend, ask the device, acknowledge, reconcile now
    audit.py      relay: the audit log — search by text, action, operator, time; paged
    search.py     collector: full-text search with filters, histogram and facets, paged
    analysis.py   collector: templates (share, 24-hour trend), new templates, alerts, error rates
    files.py      collector: the files received, with their sha256 and a download link

Every console action is also a REST call and a CLI command, and runs through the same live objects
(journal, reconciler, record store, audit log). Only ``logferry.api.apps`` imports this package, when the
API starts: nothing here may be imported by a role at start-up (NiceGUI takes about a second to load).
"""
