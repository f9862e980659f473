"""What the in-process recipe tests share: a JobLink that records, and a JobSpec builder.

The recording link stands in for the TrainingManager (the integration tests cover
the real one); training, models and files are real.
"""

from __future__ import annotations

from pathlib import Path

from forge.schemas import TrainingRequest
from forge.training.manager_link import ProgressUpdate, WorkerEvent
from forge.training.options import Hardware, resolve_options
from forge.training.spec import JobSpec

DATASETS = Path(__file__).resolve().parents[2] / "examples" / "datasets"


class RecordingLink:
    """Records every report; with `stop_after_step`, asks the job to stop at the end of that step."""

    def __init__(self, stop_after_step: int | None = None) -> None:
        self.updates: list[dict] = []
        self.events: list[tuple[str, dict]] = []
        self.stop_after_step = stop_after_step
        self._questions = 0

    def progress(self, update: ProgressUpdate) -> None:
        # Kept as the fields the worker set, so tests read `u["loss"]` and `"loss" in u`.
        self.updates.append(update.model_dump(exclude_none=True))

    def flush(self) -> None:
        pass  # nothing is held back

    def stop_requested(self) -> bool:
        # Rank 0 asks once at the end of every step, before that step's report goes out.
        self._questions += 1
        return self.stop_after_step is not None and self._questions >= self.stop_after_step

    def event(self, event: WorkerEvent) -> None:
        self.events.append((event.kind, event.data))

    def steps(self) -> list[int]:
        return [u["current_step"] for u in self.updates if "current_step" in u]

    def losses(self) -> list[float]:
        return [u["loss"] for u in self.updates if "loss" in u]


def make_spec(tmp_path: Path, builtin_dir: Path, *, dataset: str = "text_generation", dataset_format: str = "pairs",
              model_name: str = "forge/tiny-llama", hardware: Hardware = Hardware(cpus=2), **fields) -> JobSpec:
    request = TrainingRequest(model_name=model_name, dataset=dataset, **{"task": "text-generation", **fields})
    options, _ = resolve_options(request, hardware)
    return JobSpec(
        job_id="train_recipe", request=request, options=options, model_source=model_name,
        dataset_path=str(DATASETS / f"{dataset}.jsonl"), dataset_format=dataset_format,
        output_dir=str(tmp_path / "adapter"), builtin_dir=str(builtin_dir), runs_dir=str(tmp_path / "runs"),
        manager_name="unused", namespace="unused",
    )
