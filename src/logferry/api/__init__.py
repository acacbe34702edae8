"""The REST API of the server roles (relay and collector): FastAPI apps, their routers, metrics and auth.

Layout — one router module per area, so a new area (files) is one more module and one more
``include_router`` line in ``apps.py``:

    launch.py          start/stop the API inside a role's event loop (light: imports nothing heavy)
    serving.py         uvicorn on an already-bound socket, without uvicorn's own signal handling
    apps.py            the app factories and the views (what each role hands to its API)
    problems.py        the error body every route answers with, and its handlers
    auth.py            the optional bearer token and the operator header
    params.py          query filters: level, since/until, paging → store filters
    schemas.py         response and request models (they are the OpenAPI spec)
    metrics.py         Prometheus /metrics on a per-process registry
    routes_*.py        the routers
    client.py          the httpx client the CLI uses

Importing this package must stay cheap: roles import ``launch`` before fastapi is loaded, so nothing here
may import fastapi, uvicorn or pydantic at package level.
"""
