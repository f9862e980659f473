"""FastAPI's "unset" marker, kept one object when Serve pickles the ingress app.

`@serve.ingress(app)` freezes the app with a cloudpickle round trip (and each replica
rebuilds it). FastAPI tells an option nobody set by identity (`example is _Unset`);
a round trip makes a copy of the marker, so every `Query(...)`/`Path(...)` parameter
of the frozen app would publish `"example": {}` in /openapi.json. A reducer that
gives back the one marker keeps the served schema the app's own.
"""

from __future__ import annotations

import copyreg
from typing import Any

from fastapi.datastructures import DefaultPlaceholder, _Unset


def _the_unset_marker() -> Any:
    return _Unset


def _reduce(placeholder: DefaultPlaceholder) -> tuple:
    if placeholder is _Unset:
        return _the_unset_marker, ()
    return DefaultPlaceholder, (placeholder.value,)


def keep_fastapi_unset_across_pickling() -> None:
    """Register the reducer (idempotent); call before `serve.ingress` freezes the app."""
    copyreg.pickle(DefaultPlaceholder, _reduce)
