"""ApiIngress: the REST contract, the training WebSocket and /v1 (deployments/openai_api.py), as a Serve deployment.

Routes are thin: parse, call the TrainingManager or the Playground, shape the
response. The ingress owns no state: the manager does. It keeps a copy of the jobs'
statuses, read from the manager's change feed (deployments/status_follower.py). No torch here.
"""


import asyncio
from typing import Annotated, Any, Optional

from annotated_types import Interval
from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile, WebSocket
from fastapi.responses import StreamingResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.auth import ApiKeyMiddleware
from deployments.dataset_uploads import DatasetUploads
from deployments.auth import configure as configure_api_key
from deployments.cluster_api import ClusterRoutes
from deployments.cluster_api import router as cluster_router
from deployments.console_files import ConsoleRoutes
from deployments.console_files import router as console_router
from deployments.errors import install_error_handlers, unwrap
from deployments.openai_api import OpenAIRoutes
from deployments.openai_api import router as openai_router
from deployments.openai_fine_tuning_api import OpenAIFineTuningRoutes
from deployments.openai_fine_tuning_api import router as openai_fine_tuning_router
from deployments.openai_uploads_api import OpenAIUploadRoutes
from deployments.openai_uploads_api import router as openai_uploads_router
from deployments.pickling import keep_fastapi_unset_across_pickling
from deployments.playground_api import PlaygroundStreamRoutes
from deployments.playground_api import router as playground_router
from deployments.query_check import refuse_unknown_query
from deployments.status_follower import StatusFollower
from deployments.training_feed import serve_feed
from forge import catalog
from forge.errors import BadRequest, NotFound
from forge.job_schemas import (
    CheckpointList,
    JobDetail,
    JobEventPage,
    JobList,
    JobLogs,
    JobMetricsPage,
)
from forge.jobs.listing import MAX_PAGE
from forge.jobs.logs import MAX_TAIL, read_job_log
from forge.manager_handle import manager_with
from forge.model_archive import archive_folder_name, model_members, tar_gz_chunks
from forge.modeling.model_card import CARD_FILE, ModelCard, readme_text
from forge.openai_uploads import UploadSessions
from forge.playground_stream import task_input_problem
from forge.schemas import (
    API_VERSION,
    MAX_ID,
    PROVIDERS,
    STRATEGIES,
    TASKS,
    DatasetDetail,
    DatasetInfo,
    DatasetList,
    DeleteResponse,
    ErrorResponse,
    GenerateRequest,
    GenerateResponse,
    HealthResponse,
    InfoResponse,
    JobStatus,
    MergeResponse,
    ModelDetail,
    ModelList,
    ModelSummary,
    ModelUpdate,
    StartTrainingResponse,
    StopTrainingResponse,
    TrainingRequest,
    TrainingStatus,
    UploadResponse,
)
from forge.settings import Settings
from forge.storage import Storage
from forge.unsloth_env import ProviderStatus

# A model id's bounds on the type itself: every route taking one shares them.
ModelId = Annotated[int, Interval(ge=1, le=MAX_ID)]
# Paging a job's events and metrics: a long job has tens of thousands of logged steps.
MAX_HISTORY_PAGE = 1000
_Offset = Annotated[int, Query(ge=0, le=2**62, description="The first entry to return, 0 first.")]
_HistoryLimit = Annotated[int, Query(ge=1, le=MAX_HISTORY_PAGE, description="Entries per page.")]
_ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 404, 409, 413, 500, 503)}

keep_fastapi_unset_across_pickling()  # before @serve.ingress below freezes the app
# /docs and /redoc are deployments/console_files.py's: FastAPI's own load their scripts from a CDN.
app = FastAPI(title="ModelForge", version=API_VERSION, responses=_ERRORS, dependencies=[Depends(refuse_unknown_query)],
              docs_url=None, redoc_url=None)
install_error_handlers(app)
app.add_middleware(ApiKeyMiddleware)
app.include_router(openai_router)  # /v1: the OpenAI-compatible routes, methods of ApiIngress by inheritance
app.include_router(openai_fine_tuning_router)  # /v1/files, /v1/fine_tuning
app.include_router(openai_uploads_router)  # /v1/uploads
app.include_router(playground_router)  # /api/playground/generate/stream
app.include_router(cluster_router)  # /api/cluster, a job's page in the Ray dashboard
app.include_router(console_router)  # the console at /, its files, /docs and /redoc


def _mb(size_bytes: int) -> float:
    return round(size_bytes / (1024 * 1024), 3)


def _model_summary(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "size_mb": _mb(record["size_bytes"])}


# Module-level helpers above sit before the class on purpose: Serve serializes the
# ingress class when it is decorated, so everything it calls must exist by then.
# Every open /ws/training holds one ongoing request for its whole life, and the routes
# only await other actors: Serve's default of 5 would let five subscribers starve every client.
@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000)
@serve.ingress(app)
class ApiIngress(OpenAIRoutes, OpenAIFineTuningRoutes, OpenAIUploadRoutes, PlaygroundStreamRoutes,
                 ClusterRoutes, ConsoleRoutes):
    def __init__(self, playground: DeploymentHandle, settings: Settings) -> None:
        self.playground = playground
        self.settings = settings
        configure_api_key(settings.api_key)
        self.storage = Storage(settings)
        self.storage.ensure_dirs()
        # A redeploy with changed settings replaces an idle manager; with jobs running it fails, saying why.
        self.manager = manager_with(settings)
        # Job statuses as the manager's change feed tells them: status reads cost no actor call.
        self.status = StatusFollower(self.manager)
        self.uploads = DatasetUploads(settings, self.storage, self.manager)
        self.upload_sessions = UploadSessions(self.storage.scratch_dir / "uploads", file_limit=self.uploads.limit_bytes,
                                              part_limit=int(settings.upload_part_mb * 1024 * 1024))
        # Start the (slow) unsloth environment probe now, so /api/info answers quickly later.
        self.manager.unsloth_status.remote()
        # Jobs a previous life of the service queued start as soon as slots allow.
        self.manager.start_queued.remote()

    # ---------------------------------------------------------------- system

    @app.get("/api/health", response_model=HealthResponse)
    async def health(self) -> HealthResponse:
        return HealthResponse()

    @app.get("/api/info", response_model=InfoResponse)
    async def info(self) -> InfoResponse:
        status = await self.manager.provider_status.remote()
        unsloth = ProviderStatus.model_validate(status["unsloth"])
        supported = catalog.supported_combinations(unsloth)
        formats = {f"{c['task']}/{c['strategy']}": list(catalog.formats_for(c["task"], c["strategy"]))
                   for c in supported}
        return InfoResponse(
            providers=list(PROVIDERS), strategies=list(STRATEGIES), tasks=list(TASKS),
            supported=supported, provider_status=status, dataset_formats=formats,
        )

    # -------------------------------------------------------------- datasets

    @app.post("/api/upload_dataset", response_model=UploadResponse)
    async def upload_dataset(
        self,
        request: Request,
        file: UploadFile = File(..., description=(
            "The dataset, by its name's suffix: .jsonl (one JSON object per line), .csv (a header row, then one "
            "row per record; every cell is text), .parquet, or .json (an array of objects, or one object per "
            "line). Every kind is stored as JSONL under the name ending in .jsonl.")),
        format: Optional[str] = Form(None, description="pairs | chat | preference | qa | text; detected when absent."),
    ) -> UploadResponse:
        """Upload a dataset (JSONL, CSV, Parquet or JSON), validated row by row and stored as JSONL.

        Every row's errors come back at once (400, `validation`); a CSV, Parquet or JSON
        upload is converted to JSONL and `message` says so, as it says which alias fields
        were normalised and under which name a clashing upload was stored. More uploaded
        bytes than FORGE_MAX_UPLOAD_MB is a 413; a refused upload leaves nothing stored.
        """
        self.uploads.refuse_oversized(request.headers.get("content-length"))
        return await self.uploads.store(file, format)

    @app.get("/api/datasets", response_model=DatasetList)
    async def list_datasets(self) -> DatasetList:
        records = await self.manager.list_datasets.remote()
        return DatasetList(datasets=[DatasetInfo(**r, size_mb=_mb(r["size_bytes"])) for r in records])

    @app.get("/api/datasets/{filename}", response_model=DatasetDetail)
    async def get_dataset(
        self, filename: str,
        offset: Annotated[int, Query(ge=0, description="The first row to show, 0 first.")] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Rows per page.")] = 20,
    ) -> DatasetDetail:
        """A dataset's format, row count and size, and a page of its rows."""
        detail = await self.manager.dataset_rows.remote(filename, offset, limit)
        return DatasetDetail(**detail, size_mb=_mb(detail["size_bytes"]))

    @app.delete("/api/datasets/{filename}", response_model=DeleteResponse)
    async def delete_dataset(self, filename: str) -> DeleteResponse:
        """Delete a dataset (409 while a running or queued job trains on it); models trained on it stay."""
        await self.manager.delete_dataset.remote(filename)
        return DeleteResponse(message="Dataset deleted successfully")

    # -------------------------------------------------------------- training

    @app.post("/api/start_training", response_model=StartTrainingResponse)
    async def start_training(self, body: TrainingRequest) -> StartTrainingResponse:
        async with self.status.changing():
            started = await self.manager.start_training.remote(body)
        return StartTrainingResponse(**started)

    @app.get("/api/training_status", response_model=TrainingStatus)
    async def training_status(self, job_id: Optional[str] = None) -> TrainingStatus:
        return TrainingStatus(**await self.status.training_status(job_id))

    @app.post("/api/stop_training", response_model=StopTrainingResponse)
    async def stop_training(self, job_id: Optional[str] = None) -> StopTrainingResponse:
        async with self.status.changing():
            return StopTrainingResponse(**await self.manager.stop_training.remote(job_id))

    @app.get("/api/jobs", response_model=JobList)
    async def list_jobs(
        self,
        status: Annotated[Optional[list[JobStatus]], Query(
            description="Only jobs in this state; repeat the parameter for several.")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Jobs per page.")] = 20,
        cursor: Annotated[Optional[str], Query(
            description="The `next_cursor` of the previous page; absent for the first.")] = None,
    ) -> JobList:
        """Every job, newest first, a page at a time: a job id that scrolled off a terminal is found here."""
        return JobList(**await self.manager.list_jobs.remote(status or [], limit, cursor))

    @app.get("/api/jobs/{job_id}", response_model=JobDetail)
    async def get_job(self, job_id: str) -> JobDetail:
        """One job: its status, the request as submitted, the options it trains with and the substitutions made."""
        return JobDetail(**await self.manager.job_detail.remote(job_id))

    @app.post("/api/jobs/{job_id}/resume", response_model=StartTrainingResponse)
    async def resume_training(self, job_id: str) -> StartTrainingResponse:
        """Continue an interrupted, stopped or failed job from its latest checkpoint (same job id)."""
        async with self.status.changing():
            return StartTrainingResponse(**await self.manager.resume_training.remote(job_id))

    @app.delete("/api/jobs/{job_id}", response_model=DeleteResponse)
    async def delete_job(self, job_id: str) -> DeleteResponse:
        """Forget a finished job: its record, events, metrics, checkpoints and logs (409 while it is queued or
        active). Models it registered stay."""
        async with self.status.changing():
            await self.manager.delete_job.remote(job_id)
            self.status.forget(job_id)
        return DeleteResponse(message="Job deleted successfully")

    @app.get("/api/jobs/{job_id}/events", response_model=JobEventPage)
    async def job_events(self, job_id: str, offset: _Offset = 0, limit: _HistoryLimit = MAX_HISTORY_PAGE
                         ) -> JobEventPage:
        """The job's history (queued, substitutions, settings, checkpoints, restarts, stop, its end), oldest first."""
        return JobEventPage(**await self.manager.job_events.remote(job_id, offset, limit))

    @app.get("/api/jobs/{job_id}/metrics", response_model=JobMetricsPage)
    async def job_metrics(self, job_id: str, offset: _Offset = 0, limit: _HistoryLimit = MAX_HISTORY_PAGE
                          ) -> JobMetricsPage:
        """Every logged step's loss, learning rate, gradient norm and token count, and evaluations' losses."""
        return JobMetricsPage(**await self.manager.job_metrics.remote(job_id, offset, limit))

    @app.get("/api/jobs/{job_id}/logs", response_model=JobLogs)
    async def job_logs(
        self, job_id: str,
        tail: Annotated[int, Query(ge=1, le=MAX_TAIL, description="How many of the last lines to return.")] = 200,
        rank: Annotated[int, Query(ge=0, le=MAX_ID, description="Which worker (0: the one that reports).")] = 0,
    ) -> JobLogs:
        """The end of a worker's output (stdout and stderr), a failed job's traceback included.

        Kept in FORGE_STORAGE with the job's files, so it outlives the Ray session."""
        await self.manager.job_detail.remote(job_id)  # 404 for a job that does not exist
        return await asyncio.to_thread(read_job_log, self.storage, job_id, rank, tail)

    @app.get("/api/jobs/{job_id}/checkpoints", response_model=CheckpointList)
    async def job_checkpoints(self, job_id: str) -> CheckpointList:
        """The checkpoints the job keeps, oldest first, each with its step, time and losses.

        A completed job keeps none: its model is registered."""
        return CheckpointList(**await self.manager.job_checkpoints.remote(job_id))

    @app.post("/api/jobs/{job_id}/checkpoints/{step}/register", response_model=ModelDetail)
    async def register_checkpoint(self, job_id: str, step: Annotated[int, Interval(ge=0, le=MAX_ID)]) -> ModelDetail:
        """Register a checkpoint's adapter as a model (named after the job and step), e.g. to try it in the
        playground while the job still trains."""
        return ModelDetail(**_model_summary(await self.manager.register_checkpoint.remote(job_id, step)))

    @app.websocket("/ws/training")
    async def training_feed(self, websocket: WebSocket, job_id: Optional[str] = None) -> None:
        """Every status change, in order; with ?job_id= it closes after that job ends.

        A restart of the training manager does not end the socket: it then sends the
        status as the restarted manager sees it and goes on. If the manager stays away
        longer than a minute, the socket closes with code 1011 and says so."""
        await serve_feed(websocket, self.manager, job_id)

    # ---------------------------------------------------------------- models

    @app.get("/api/models", response_model=ModelList)
    async def list_models(self) -> ModelList:
        records = await self.manager.list_models.remote()
        return ModelList(models=[ModelSummary(**_model_summary(r)) for r in records])

    @app.get("/api/models/{model_id}", response_model=ModelDetail)
    async def get_model(self, model_id: ModelId) -> ModelDetail:
        return ModelDetail(**_model_summary(await self.manager.get_model.remote(model_id)))

    @app.patch("/api/models/{model_id}", response_model=ModelDetail)
    async def update_model(self, model_id: ModelId, body: ModelUpdate) -> ModelDetail:
        """Rename a model (names are unique: 409 on a clash) or set its description."""
        return ModelDetail(**_model_summary(await self.manager.update_model.remote(model_id, body)))

    @app.delete("/api/models/{model_id}", response_model=DeleteResponse)
    async def delete_model(self, model_id: ModelId) -> DeleteResponse:
        await self.manager.delete_model.remote(model_id)
        return DeleteResponse(message="Model deleted successfully")

    @app.get(
        "/api/models/{model_id}/download", response_class=StreamingResponse, response_model=None,
        responses={200: {"description": "The model folder as a gzipped tar, one top folder named after the model.",
                         "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}}}},
    )
    async def download_model(self, model_id: ModelId) -> StreamingResponse:
        """The model's folder as a .tar.gz, streamed as it is read from storage.

        An adapter model holds the PEFT adapter and its config (`PeftModel.from_pretrained(base, folder)`
        loads it), a merged one the full weights (`AutoModelFor...from_pretrained(folder)`); both hold the
        tokenizer, forge.json and a README.md model card (base model, dataset, task, strategy,
        hyperparameters, metrics), written for this download.
        """
        model = await self.manager.get_model.remote(model_id)
        folder = self.storage.path_of(model["path"])
        try:
            card = ModelCard.parse(await asyncio.to_thread(self.storage.read_text, f"{folder}/{CARD_FILE}"))
            readme = readme_text(card, name=model["name"], description=model["description"])
            top = archive_folder_name(model["name"], model_id)
            members = await asyncio.to_thread(model_members, self.storage, folder, top, readme)
        except FileNotFoundError:  # deleted since the lookup
            raise NotFound(f"model {model_id} does not exist")
        # The bytes go from storage to the client here, in bounded chunks (Starlette iterates this
        # generator in a thread): never through the manager, never whole in memory.
        return StreamingResponse(tar_gz_chunks(members), media_type="application/gzip",
                                 headers={"Content-Disposition": f'attachment; filename="{top}.tar.gz"'})

    @app.post("/api/models/{model_id}/merge", response_model=MergeResponse)
    async def merge_model(self, model_id: ModelId) -> MergeResponse:
        """Merge an adapter model into its base: a new, standalone model of kind `merged` (safetensors + tokenizer).

        Loads with `AutoModelFor...from_pretrained` alone and serves in the playground under its new id; the
        adapter model stays, and deleting it later leaves the merged one whole. A qlora adapter is merged onto
        the base in its original precision (unquantized), and the message says so. Merging a merged model is
        a 409. Takes as long as loading the base and saving it again.
        """
        merged = await self.manager.merge_model.remote(model_id)
        return MergeResponse(message=merged["message"], source_model_id=model_id,
                             model=ModelDetail(**_model_summary(merged["model"])))

    # ------------------------------------------------------------ playground

    @app.post("/api/playground/generate", response_model=GenerateResponse)
    async def generate(self, body: GenerateRequest) -> GenerateResponse:
        # The registry lookup and the replica's work run at once (one actor round trip less per
        # request); the lookup still decides: an unknown or deleted model is a 404 whatever the
        # replica made of it, a passage-less question to an extractive QA model a 400.
        reply = self.playground.options(multiplexed_model_id=str(body.model_id)).generate.remote(body)
        try:
            model = await self.manager.get_model.remote(body.model_id)
        except Exception:
            reply.cancel()
            raise
        if problem := task_input_problem(model["task"], body):
            reply.cancel()
            raise BadRequest(problem)
        try:
            result = await reply
        except Exception as error:
            if isinstance(unwrap(error), FileNotFoundError):
                raise NotFound(f"model {body.model_id} does not exist")
            raise
        return GenerateResponse(**result, model_id=body.model_id)

