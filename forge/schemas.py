"""Pydantic models for every request and response of the REST contract.

Field names and meanings follow `rest-api.md` and the reference training-config
schema. Requests forbid unknown fields, so a typo such as `num_epochs` is an
error instead of a silent fallback to the default.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from forge import catalog

API_VERSION = "v2"

Task = Literal["text-generation", "summarization", "extractive-question-answering"]
Provider = Literal["huggingface", "unsloth"]
Strategy = Literal["sft", "qlora", "rlhf", "dpo"]
ComputeSpecs = Literal["low_end", "mid_range", "high_end"]
JobStatus = Literal[
    "idle", "queued", "starting", "training", "stopping", "completed", "failed", "stopped", "interrupted"
]

TASKS: tuple[str, ...] = Task.__args__
PROVIDERS: tuple[str, ...] = Provider.__args__
STRATEGIES: tuple[str, ...] = Strategy.__args__
ACTIVE_STATUSES = frozenset({"queued", "starting", "training", "stopping"})
TERMINAL_STATUSES = frozenset({"completed", "failed", "stopped", "interrupted"})


def utc_iso(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with a trailing Z, as the contract writes timestamps."""
    moment = moment or datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------- training


class TrainingRequest(_Request):
    """Body of POST /api/start_training."""

    task: Task = Field(description="What the model learns to do.")
    model_name: str = Field(
        min_length=1,
        description="Built-in model (forge/tiny-llama), a local model directory, or a Hugging Face Hub id.",
    )
    provider: Provider = Field("huggingface", description="Library that loads and trains the model.")
    strategy: Strategy = Field("sft", description="Fine-tuning method.")
    dataset: str = Field(
        min_length=1, description="Filename of an uploaded dataset, or a path inside FORGE_DATASET_ROOTS."
    )
    compute_specs: Optional[ComputeSpecs] = Field(None, description="Hardware class; detected when absent.")

    lora_r: int = Field(16, ge=1, le=256, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator.")
    lora_dropout: float = Field(0.1, ge=0, le=1, description="Dropout on the LoRA path.")

    use_4bit: bool = Field(True, description="Load the base in 4-bit (strategy qlora only).")
    use_8bit: bool = Field(False, description="Load the base in 8-bit (strategy qlora only).")
    bnb_4bit_compute_dtype: Literal["float16", "bfloat16", "float32"] = "float16"
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    use_nested_quant: bool = False

    fp16: bool = False
    bf16: bool = False
    num_train_epochs: int = Field(1, ge=1, description="Passes over the training split.")
    per_device_train_batch_size: int = Field(1, ge=1)
    per_device_eval_batch_size: int = Field(1, ge=1)
    gradient_accumulation_steps: int = Field(4, ge=1)
    gradient_checkpointing: bool = True
    max_grad_norm: float = Field(0.3, ge=0)
    learning_rate: float = Field(2e-4, gt=0, le=1)
    weight_decay: float = Field(0.001, ge=0)
    optim: Literal["adamw_torch", "adamw_8bit", "paged_adamw_32bit", "sgd"] = "paged_adamw_32bit"
    lr_scheduler_type: Literal["linear", "cosine", "constant", "polynomial"] = "cosine"
    max_steps: int = Field(-1, ge=-1, description="-1 trains for num_train_epochs; otherwise this many steps.")
    warmup_ratio: float = Field(0.03, ge=0, le=1)
    group_by_length: bool = True
    packing: bool = False
    max_seq_length: Optional[int] = Field(None, ge=16, description="Token limit per example; null picks one.")
    eval_split: float = Field(0.2, ge=0, lt=1, description="Fraction of the dataset held out for evaluation.")
    eval_dataset: Optional[str] = Field(
        None, min_length=1,
        description="A dataset (same format) that evaluates the model instead of a hold-out: eval_split is then unused.",
    )
    seed: int = Field(42, ge=0, le=2**31 - 1, description="Seeds the hold-out, the data order and the adapter's "
                      "initial weights: the same request on the same hardware trains the same model.")
    model_suffix: Optional[str] = Field(
        None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$",
        description="Part of the registered model's name: <base>-<strategy>-<suffix>-<job hex>.",
    )
    dpo_beta: float = Field(0.1, gt=0, le=100, description="DPO's beta (strategy dpo): higher keeps the model "
                            "closer to its base.")
    eval_steps: int = Field(100, ge=1)
    save_steps: Optional[int] = Field(
        None, ge=1,
        description="Checkpoint every this many optimizer steps; null: three per epoch, at least 10 steps apart.",
    )
    save_total_limit: int = Field(2, ge=1, le=100, description="Checkpoints kept per job; older ones are pruned.")
    num_workers: int = Field(1, ge=1, le=64, description="Ray Train workers; >1 trains data-parallel.")

    @field_validator("max_steps")
    @classmethod
    def _max_steps_not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("max_steps must be -1 (train for num_train_epochs) or at least 1")
        return value

    @field_validator("model_name", "dataset", "eval_dataset")
    @classmethod
    def _not_blank(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return value
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @model_validator(mode="after")
    def _strategy_fits_task(self) -> "TrainingRequest":
        # forge/catalog.py is the one table of what trains.
        misfit = catalog.strategy_misfit(self.task, self.strategy)
        if misfit:
            raise ValueError(misfit)
        if catalog.quantizes_base(self.strategy) and not (self.use_4bit or self.use_8bit):
            raise ValueError(f"strategy {self.strategy!r} quantizes the base: set use_4bit or use_8bit to true")
        return self


class StartTrainingResponse(BaseModel):
    status: Literal["started", "queued"] = Field(
        "started", description="`queued` when every slot was busy and the job waits its turn (FORGE_QUEUE_SIZE).")
    job_id: str
    message: str
    queue_position: Optional[int] = Field(None, description="A queued job's place in line, 1 first; else null.")


class JobProgress(BaseModel):
    """Where a job stands: the fields the REST status shows and the registry's job row stores."""

    job_id: Optional[str] = Field(None, description="The job, `train_<hex>`; absent before any job ran.")
    status: JobStatus = Field("idle", description="The job's state.")
    progress: float = Field(0.0, description="Percent done, 0-100, never backwards; 100 once the model is registered.")
    current_epoch: float = Field(0, description="Epochs done so far (fractional).")
    total_epochs: int = Field(0, description="Epochs the job trains.")
    current_step: int = Field(0, description="Optimizer steps done so far.")
    total_steps: int = Field(0, description="Optimizer steps the job takes in all.")
    loss: Optional[float] = Field(None, description="Latest training loss.")
    learning_rate: Optional[float] = Field(None, description="Latest learning rate.")
    eval_loss: Optional[float] = Field(None, description="Latest evaluation loss.")
    message: Optional[str] = Field(None, description="What is happening, or why the job ended as it did.")
    model_id: Optional[int] = Field(None, description="The registered model, once the job completed.")
    estimated_finish: Optional[str] = Field(
        None, description="When the job should finish at its pace so far (ISO 8601 UTC): set once steps flow, "
        "null before that and once it ended.")
    created_at: Optional[str] = Field(None, description="When the job was created (ISO 8601 UTC).")
    updated_at: Optional[str] = Field(None, description="When the job last changed (ISO 8601 UTC).")


class TrainingStatus(JobProgress):
    """Body of GET /api/training_status and of every /ws/training message."""


class StopTrainingResponse(BaseModel):
    status: Literal["stopped"] = "stopped"
    message: str
    job_id: Optional[str] = None


# ----------------------------------------------------------------------- models

# What a model's folder holds: a LoRA adapter for its base, or the base with an adapter merged in.
ModelFiles = Literal["adapter", "merged"]


class ModelSummary(BaseModel):
    id: int
    name: str
    base_model: str
    task: Task
    created_at: str
    size_mb: float
    kind: ModelFiles = Field(
        "adapter", description="adapter: a PEFT LoRA adapter, loaded onto `base_model`; merged: a standalone model "
                               "with an adapter merged into the base's weights (POST /api/models/{id}/merge).")


class ModelList(BaseModel):
    models: list[ModelSummary]


class TrainingParams(BaseModel):
    num_epochs: int
    batch_size: int
    learning_rate: float
    model_config = ConfigDict(extra="allow")


class ModelDetail(ModelSummary):
    provider: Provider
    strategy: Strategy
    training_params: TrainingParams
    metrics: dict[str, Optional[float]]
    job_id: Optional[str] = None
    description: Optional[str] = Field(None, description="Free text the user set (PATCH /api/models/{id}).")


class ModelUpdate(_Request):
    """Body of PATCH /api/models/{id}: the fields to change; absent ones stay as they are."""

    name: Optional[str] = Field(None, min_length=1, max_length=200, description="A new name, unique among models.")
    description: Optional[str] = Field(None, max_length=5000, description="Free text; an empty string clears it.")

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value.strip() if value is not None else None

    @model_validator(mode="after")
    def _something_to_change(self) -> "ModelUpdate":
        if not self.model_fields_set:
            raise ValueError("send `name` and/or `description`")
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("`name` cannot be null: a model always has a name")
        return self


class MergeResponse(BaseModel):
    """Response of POST /api/models/{id}/merge."""

    status: Literal["merged"] = "merged"
    message: str = Field(description="What was merged onto what, in which precision (e.g. a qlora adapter's base "
                                     "loaded unquantized).")
    source_model_id: int = Field(description="The adapter model that was merged; it stays as it was.")
    model: ModelDetail = Field(description="The new model, of kind `merged`.")


class DeleteResponse(BaseModel):
    status: Literal["deleted"] = "deleted"
    message: str


# --------------------------------------------------------------------- datasets


class LineError(BaseModel):
    line: int = Field(description="1-based line number in the uploaded JSONL file; in a CSV, Parquet or JSON-array "
                      "upload, the 1-based row (CSV: the header not counted; JSON: the array's element). "
                      "0: the whole file.")
    error: str


# "text" (plain language-model rows) is beyond the contract's original four; README says so.
DatasetFormat = Literal["pairs", "chat", "preference", "qa", "text"]


class ValidationReport(BaseModel):
    valid: bool
    errors: list[LineError] = Field(default_factory=list, description="The first errors, capped.")
    total_errors: int = 0
    num_examples: int = 0
    format: Optional[DatasetFormat] = Field(
        None,
        description="Row shape: pairs (input/output), chat (messages), preference (prompt/chosen/rejected), "
        "qa (context/question/answer), text (text: plain language modelling).",
    )
    normalized: dict[str, str] = Field(
        default_factory=dict, description="Alias fields found in the rows and the canonical field each maps to."
    )


class UploadResponse(BaseModel):
    status: Literal["uploaded"] = "uploaded"
    filename: str
    num_examples: int
    validation: ValidationReport
    message: Optional[str] = None


class DatasetInfo(BaseModel):
    filename: str
    num_examples: int
    size_mb: float
    uploaded_at: str
    format: Optional[DatasetFormat] = None


class DatasetList(BaseModel):
    datasets: list[DatasetInfo]


class DatasetDetail(DatasetInfo):
    """Body of GET /api/datasets/{filename}: the dataset and a page of its rows."""

    rows: list[dict[str, Any]] = Field(description="Rows `offset` onwards, as stored (blank lines skipped).")
    offset: int = Field(description="The index of the first row shown, 0 first.")
    next_offset: Optional[int] = Field(None, description="Pass as `offset` for the next page; null after the last row.")


# ------------------------------------------------------------------- playground

MAX_NEW_TOKENS_CAP = 1024
# Registry ids are SQLite integers: larger ids cannot exist and must not reach the database.
MAX_ID = 2**63 - 1


class GenerateRequest(_Request):
    model_id: int = Field(ge=1, le=MAX_ID)
    prompt: Optional[str] = Field(
        None, min_length=1,
        description="Text to continue (summarization: the text to summarize; extractive QA: the question). "
        "Required, except by an extractive QA model sent `context` and `question`.",
    )
    context: Optional[str] = Field(None, min_length=1, description="Extractive QA: the passage to answer from.")
    question: Optional[str] = Field(None, min_length=1, description="Extractive QA: the question (overrides `prompt`).")
    max_new_tokens: int = Field(100, ge=1, le=MAX_NEW_TOKENS_CAP)
    temperature: float = Field(0.7, ge=0, le=2, description="0 means greedy decoding.")
    top_p: float = Field(0.9, gt=0, le=1)

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value

    @model_validator(mode="after")
    def _something_to_answer(self) -> "GenerateRequest":
        if self.prompt is None and not (self.question and self.context):
            raise ValueError("send `prompt` (an extractive QA model also answers `question` about `context` "
                             "without one)")
        return self


class GenerateResponse(BaseModel):
    generated_text: str
    tokens_generated: int
    generation_time_ms: float
    model_id: Optional[int] = None
    score: Optional[float] = Field(None, description="Extractive QA: probability of the returned span.")
    prompt_truncated: bool = Field(False, description="The prompt was cut from the left to fit the context.")


# ----------------------------------------------------------------------- system


class InfoResponse(BaseModel):
    providers: list[str]
    strategies: list[str]
    tasks: list[str]
    version: str = API_VERSION
    supported: list[dict[str, str]] = Field(
        default_factory=list, description="(task, strategy, provider) combinations this service trains."
    )
    provider_status: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per provider: available, and why (or why not)."
    )
    dataset_formats: dict[str, list[str]] = Field(
        default_factory=dict, description="The dataset formats each supported `task/strategy` trains on.")


class HealthResponse(BaseModel):
    status: Literal["healthy"] = "healthy"
    version: str = API_VERSION


class ErrorResponse(BaseModel):
    error: str
    detail: str
    status_code: int
    model_config = ConfigDict(extra="allow")


def error_body(status_code: int, error: str, detail: Any) -> dict[str, Any]:
    return ErrorResponse(error=error, detail=str(detail), status_code=status_code).model_dump()
