"""Unknown query parameters are refused, as unknown body fields are: a typo such as `?limt=5` is a 400
naming it, not a silently ignored parameter (the same rule the request models apply to bodies). So is a
single-valued parameter given twice (`?after=a&after=b`), of which the route would read only the last.
"""

from __future__ import annotations

import types
from typing import Annotated, Union, get_args, get_origin

from starlette.requests import HTTPConnection

from deployments.openai_errors import is_openai_path
from forge.errors import BadRequest


def _takes_several(annotation: object) -> bool:
    """Whether a parameter of this type takes repeated values (`list[JobStatus]`, `Optional[list[str]]`)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType, Annotated):
        return any(_takes_several(arg) for arg in get_args(annotation) if arg is not type(None))
    return origin in (list, set, tuple, frozenset)


def _declared(route: object) -> dict[str, bool]:
    """The query parameters the route (and its dependencies) declare, by the names clients send:
    whether each takes several values."""
    names: dict[str, bool] = {}
    pending = [getattr(route, "dependant", None)]
    while pending:
        dependant = pending.pop()
        if dependant is None:
            continue
        names.update({field.alias: _takes_several(field.field_info.annotation) for field in dependant.query_params})
        pending.extend(dependant.dependencies)
    return names


async def refuse_unknown_query(connection: HTTPConnection) -> None:
    """An app-wide dependency: 400 for a query parameter the matched route does not take, or takes once."""
    declared = _declared(connection.scope.get("route"))
    query = connection.query_params
    unknown = sorted(set(query) - set(declared))
    repeated = sorted(name for name in set(query) & set(declared)
                      if not declared[name] and len(query.getlist(name)) > 1)
    if not unknown and not repeated:
        return
    name = (unknown or repeated)[0]
    # OpenAI's error shape names the parameter in `param`; the contract's has no such field.
    extra = {"param": name} if is_openai_path(connection.scope) else {}
    if unknown:
        raise BadRequest(f"unknown query parameter {name!r}", extra=extra)
    raise BadRequest(f"query parameter {name!r} takes one value; it was given {len(query.getlist(name))}",
                     extra=extra)
