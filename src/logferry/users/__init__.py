"""Users, roles, password and token hashes, and console sessions: who may read and who may act.

    roles.py         Role (viewer, operator) and Person: what the config, the API and the console share
    credentials.py   argon2id password hashes, sha256 token digests, and the config checks of both
    sessions.py      server-side console sessions (idle and absolute expiry) and the sign-in rate limit
    gate.py          Gate: one role's users, its shared api_token and its sessions; answers "who is this?"

Nothing here knows FastAPI or NiceGUI (``logferry.api.auth`` and ``logferry.console.access`` adapt it), and
nothing here may ever log, print or put in an error message a password, a hash or a token.
"""

from logferry.users.roles import Person, Role

__all__ = ["Person", "Role"]
