"""Whether the unsloth provider's environment exists and imports, asked of that environment.

The core environment never imports unsloth (importing it patches transformers
process-wide), so the check runs the provider's own interpreter in a subprocess,
once, and the manager keeps the answer. That import costs about 9 s of CPU, which
every service start would otherwise spend beside its first job: a successful answer
is kept in the environment's folder and reused until the environment's packages
change. `make install` probes once, right after building the environment.

    .venv/bin/python -m forge.unsloth_env [.venv-unsloth/bin/python]
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Optional

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


class _KeptAnswer(BaseModel):
    environment: str
    status: ProviderStatus


# Beside pyvenv.cfg, in the environment the answer is about.
_KEPT_ANSWER = "forge-unsloth-probe.json"


async def probe_unsloth(python: Path) -> ProviderStatus:
    """Import unsloth in `python`; unavailable with the first line of the error when it fails.

    A successful answer is kept and reused while the environment is unchanged; a failure is
    never kept, so fixing the environment needs no more than a restart.
    """
    if not (python.is_file() and os.access(python, os.X_OK)):
        # Ray would wait forever for a worker whose interpreter does not exist: say so up front.
        return ProviderStatus(available=False, detail=f"no unsloth environment: {python} does not exist "
                                                       "(build it with `make install`)")
    environment = environment_state(python)
    kept = _kept_answer(python, environment)
    if kept is not None:
        return kept
    status = await _import_unsloth(python)
    if status.available and environment is not None:
        _keep_answer(python, _KeptAnswer(environment=environment, status=status))
    return status


def environment_state(python: Path) -> Optional[str]:
    """What a probe's answer depends on: the interpreter, its site-packages (their mtimes change
    whenever pip adds or removes a package) and whether a GPU driver is present. None outside a venv."""
    root = python.parent.parent
    site_packages = sorted(root.glob("lib/python*/site-packages"))
    if not (root / "pyvenv.cfg").is_file() or not site_packages:
        return None
    stamps = [f"{folder}@{folder.stat().st_mtime_ns}" for folder in site_packages]
    return " ".join([str(python), *stamps, f"nvidia-driver={Path('/dev/nvidiactl').exists()}"])


def _kept_answer(python: Path, environment: Optional[str]) -> Optional[ProviderStatus]:
    try:
        kept = _KeptAnswer.model_validate_json((python.parent.parent / _KEPT_ANSWER).read_bytes())
    except (OSError, ValueError):
        return None
    return kept.status if environment is not None and kept.environment == environment else None


def _keep_answer(python: Path, answer: _KeptAnswer) -> None:
    target = python.parent.parent / _KEPT_ANSWER
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    try:
        partial.write_text(answer.model_dump_json())
        os.replace(partial, target)  # whole or not at all: several services may probe at once
    except OSError:
        partial.unlink(missing_ok=True)  # a read-only environment: probe again next time


async def _import_unsloth(python: Path) -> ProviderStatus:
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


if __name__ == "__main__":
    # `make install` runs this once the unsloth environment is built: it says whether the provider
    # works, and keeps the answer for every service that starts on this environment.
    from forge.settings import Settings

    interpreter = Path(sys.argv[1]) if len(sys.argv) > 1 else Settings.from_env().unsloth_python
    found = asyncio.run(probe_unsloth(interpreter))
    print(f"unsloth provider: {'available' if found.available else 'unavailable'}: {found.detail}")
