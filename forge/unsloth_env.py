"""Whether the unsloth provider's environment exists and imports, asked of that environment.

The core environment never imports unsloth (importing it patches transformers
process-wide), so the check runs the provider's own interpreter in a subprocess,
once, and the manager keeps the answer.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pydantic import BaseModel

# Importing unsloth takes several seconds (it imports torch and patches transformers and TRL).
_PROBE_TIMEOUT_S = 300
_PROBE = (
    "import unsloth, trl, transformers, torch\n"
    "print(unsloth.__version__, trl.__version__, transformers.__version__, torch.cuda.is_available())\n"
)


class ProviderStatus(BaseModel):
    available: bool
    detail: str


async def probe_unsloth(python: Path) -> ProviderStatus:
    """Import unsloth in `python`; unavailable with the first line of the error when it fails."""
    if not (python.is_file() and os.access(python, os.X_OK)):
        # Ray would wait forever for a worker whose interpreter does not exist: say so up front.
        return ProviderStatus(available=False, detail=f"no unsloth environment: {python} does not exist "
                                                       "(build it with `make install`)")
    process = await asyncio.create_subprocess_exec(
        str(python), "-c", _PROBE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        # The probe must not inherit a PYTHONPATH that points into the core venv.
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        # Seconds of imports on every core the service has: at the lowest priority, so that they slow
        # neither the service's start nor a job training meanwhile (only an unsloth job waits for the answer).
        preexec_fn=_lowest_priority,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), _PROBE_TIMEOUT_S)
    except asyncio.TimeoutError:
        process.kill()
        return ProviderStatus(available=False, detail=f"importing unsloth took over {_PROBE_TIMEOUT_S}s")
    if process.returncode != 0:
        return ProviderStatus(available=False, detail=f"unsloth does not import: {_error_line(err.decode())}")
    unsloth_version, trl_version, transformers_version, cuda = out.decode().split()[-4:]
    device = "CUDA" if cuda == "True" else "its CPU backend"
    return ProviderStatus(
        available=True,
        detail=f"unsloth {unsloth_version} (trl {trl_version}, transformers {transformers_version}) on {device}",
    )


def _lowest_priority() -> None:
    os.nice(19)


def _error_line(stderr: str) -> str:
    """The exception line of a traceback (its first line is just 'Traceback ...')."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if not line.startswith(("File ", "Traceback", "^", "~"))]
    return (errors[-1] if errors else "unknown error")[:300]
