"""Who is calling: the one place a request's caller is resolved (DESIGN.md, "Identity").

No request message of the QOP 2 protocol carries a user, so the caller comes from the call's metadata:
1. `authorization: Bearer <token>` mapped to a user by the settings' `[users]` table;
2. else, only when no tokens are configured, the `x-qop-user` header, which
   `QuantumMachinesManager(..., connection_headers={"x-qop-user": "alice"})` sends;
3. else `anonymous`.
When tokens are configured the header is ignored, so nobody can impersonate another user by setting it.
"""

from __future__ import annotations

ANONYMOUS = "anonymous"
USER_HEADER = "x-qop-user"


class Identity:
    def __init__(self, users_by_token: dict[str, str]):
        self._users_by_token = dict(users_by_token)

    def caller(self, context) -> str:
        metadata = {key.lower(): value for key, value in (context.invocation_metadata() or ())}
        authorization = metadata.get("authorization", "")
        if self._users_by_token:
            token = authorization[len("bearer "):].strip() if authorization.lower().startswith("bearer ") else ""
            return self._users_by_token.get(token, ANONYMOUS)
        return metadata.get(USER_HEADER) or ANONYMOUS
