"""Unknown query parameters are refused, as unknown body fields are: a typo such as `?limt=5` is a 400
naming it, not a silently ignored parameter (the same rule the request models apply to bodies).
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from deployments.openai_errors import is_openai_path
from forge.errors import BadRequest


def _declared(route: object) -> set[str]:
    """The query parameters the route (and its dependencies) declare, by the names clients send."""
    names: set[str] = set()
    pending = [getattr(route, "dependant", None)]
    while pending:
        dependant = pending.pop()
        if dependant is None:
            continue
        names.update(field.alias for field in dependant.query_params)
        pending.extend(dependant.dependencies)
    return names


async def refuse_unknown_query(connection: HTTPConnection) -> None:
    """An app-wide dependency: 400 for a query parameter the matched route does not take."""
    unknown = sorted(set(connection.query_params) - _declared(connection.scope.get("route")))
    if unknown:
        # OpenAI's error shape names the parameter in `param`; the contract's has no such field.
        extra = {"param": unknown[0]} if is_openai_path(connection.scope) else {}
        raise BadRequest(f"unknown query parameter {unknown[0]!r}", extra=extra)
