"""A small client of the REST API, for tests, benches and scripts.

`get`, `post` and `delete` return the `requests.Response` as it came, so a caller
can check an error's shape; every other method returns the parsed body and raises
`ForgeClientError` on a non-2xx answer. It imports only `requests` and the schemas:
a script that drives the service never loads the training stack.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

import requests

from forge.schemas import TERMINAL_STATUSES, TrainingRequest

Status = dict[str, Any]
# What `wait` waits for: a predicate on the status, or the states that end the wait.
Until = Union[Callable[[Status], bool], Collection[str]]
_CONTENT_TYPES = {".jsonl": "application/jsonl", ".csv": "text/csv", ".json": "application/json",
                  ".parquet": "application/vnd.apache.parquet"}


class ForgeClientError(Exception):
    """A non-2xx answer: its status code and the service's error body (`error`, `detail`)."""

    def __init__(self, response: requests.Response) -> None:
        self.status_code = response.status_code
        self.body = _error_body(response)
        self.error = str(self.body.get("error") or response.reason)
        self.detail = str(self.body.get("detail", ""))
        request = response.request
        super().__init__(f"{request.method} {request.path_url} answered {self.status_code}: "
                         f"{self.error}: {self.detail}")


class JobEndedError(RuntimeError):
    """The job reached a terminal state that `wait` was not waiting for; `status` is its last status."""

    def __init__(self, job_id: str, status: Status, wanted: str) -> None:
        self.job_id, self.status = job_id, status
        super().__init__(f"job {job_id} ended {status['status']} while waiting for {wanted}: {status}")


def _error_body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    # A proxy's own error page, or a body that is not the contract's: keep its text as the detail.
    return body if isinstance(body, dict) else {"detail": response.text[:1000]}


class ForgeClient:
    """The service at `url`; with `api_key`, every request carries `Authorization: Bearer <key>`."""

    def __init__(self, url: str, api_key: Optional[str] = None, timeout: float = 60.0,
                 session: Optional[requests.Session] = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Without a session each call has a connection of its own, safe from many threads at
        # once; a caller in one thread (a bench) passes a Session to keep its connection alive.
        self._session = session

    # ------------------------------------------------------------------ raw

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """`method` on `url + path`; keyword arguments as for `requests.request`."""
        kwargs.setdefault("timeout", self.timeout)
        if self.headers:
            kwargs["headers"] = {**self.headers, **(kwargs.get("headers") or {})}
        send = self._session.request if self._session is not None else requests.request
        return send(method, self.url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def send_upload(self, path: Path, name: Optional[str] = None) -> requests.Response:
        """POST the dataset at `path` (JSONL, CSV, Parquet or JSON) as multipart, named `name` (its own by default).

        The service reads the file by its name's suffix; the content type is only a courtesy.
        """
        name = name or Path(path).name
        content_type = _CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")
        with Path(path).open("rb") as handle:
            return self.post("/api/upload_dataset", files={"file": (name, handle, content_type)})

    def send_start(self, request: Union[TrainingRequest, Mapping[str, Any], None] = None,
                   **fields: Any) -> requests.Response:
        """POST a training request: a `TrainingRequest`, a mapping, or fields (which win); unvalidated here."""
        if isinstance(request, TrainingRequest):
            body = request.model_dump(mode="json", exclude_unset=True)
        else:
            body = dict(request or {})
        return self.post("/api/start_training", json={**body, **fields})

    # --------------------------------------------------------------- parsed

    def upload(self, path: Path, name: Optional[str] = None) -> dict[str, Any]:
        """The upload's answer: `filename`, `num_examples`, `validation`."""
        return _body(self.send_upload(path, name))

    def start(self, request: Union[TrainingRequest, Mapping[str, Any], None] = None, **fields: Any) -> dict[str, Any]:
        """The start's answer: `status`, `job_id`, `message`."""
        return _body(self.send_start(request, **fields))

    def status(self, job_id: Optional[str] = None) -> Status:
        """GET /api/training_status, of `job_id` or of the service's current job."""
        return _body(self.get("/api/training_status", params={"job_id": job_id} if job_id else None))

    def wait(self, job_id: str, until: Until = TERMINAL_STATUSES, timeout: float = 300.0,
             poll_s: float = 0.5) -> Status:
        """Poll the job's status until `until` holds (a predicate, or a set of states); return that status.

        A 503 (the service's manager is restarting) is waited out like any other poll.
        Raises JobEndedError as soon as the job ends in a state `until` does not accept,
        TimeoutError after `timeout` seconds.
        """
        if callable(until):
            reached, wanted = until, "the expected state"
        else:
            states = frozenset(until)
            reached, wanted = (lambda status: status["status"] in states), str(sorted(states))
        deadline = time.monotonic() + timeout
        while True:
            response = self.get("/api/training_status", params={"job_id": job_id})
            if response.status_code == 503 and time.monotonic() < deadline:
                time.sleep(poll_s)
                continue
            status = _body(response)
            if reached(status):
                return status
            if status["status"] in TERMINAL_STATUSES:
                raise JobEndedError(job_id, status, wanted)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} did not reach {wanted} in {timeout}s: {status}")
            time.sleep(poll_s)

    def jobs_page(self, status: Sequence[str] = (), limit: int = 20, cursor: Optional[str] = None) -> dict[str, Any]:
        """One page of GET /api/jobs: `{"jobs": [...newest first], "next_cursor": ...}`."""
        params: dict[str, Any] = {"limit": limit, "status": list(status)}
        if cursor:
            params["cursor"] = cursor
        return _body(self.get("/api/jobs", params=params))

    def jobs(self, status: Sequence[str] = (), page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every job (with one of `status`, when given), newest first, fetched a page at a time."""
        cursor = None
        while True:
            page = self.jobs_page(status, page_size, cursor)
            yield from page["jobs"]
            if not (cursor := page["next_cursor"]):
                return

    def job(self, job_id: str) -> dict[str, Any]:
        """GET /api/jobs/{job_id}: the status, the request as sent, the options used and the substitutions."""
        return _body(self.get(f"/api/jobs/{job_id}"))

    def _history(self, job_id: str, kind: str) -> list[dict[str, Any]]:
        """Every entry of the job's `events` or `metrics`, oldest first, fetched a page at a time."""
        entries: list[dict[str, Any]] = []
        offset: Optional[int] = 0
        while offset is not None:
            page = _body(self.get(f"/api/jobs/{job_id}/{kind}", params={"offset": offset}))
            entries += page[kind]
            offset = page["next_offset"]
        return entries

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """The job's events, oldest first."""
        return self._history(job_id, "events")

    def metrics(self, job_id: str) -> list[dict[str, Any]]:
        """The job's logged metrics, by step."""
        return self._history(job_id, "metrics")

    def logs(self, job_id: str, tail: int = 200, rank: int = 0) -> dict[str, Any]:
        """GET /api/jobs/{job_id}/logs: the last `tail` lines of a worker's output (`lines`, `truncated`)."""
        return _body(self.get(f"/api/jobs/{job_id}/logs", params={"tail": tail, "rank": rank}))

    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        """The checkpoints the job keeps, oldest first (step, stage, saved_at, losses, registrable)."""
        return _body(self.get(f"/api/jobs/{job_id}/checkpoints"))["checkpoints"]

    def register_checkpoint(self, job_id: str, step: int) -> dict[str, Any]:
        """Register the job's checkpoint at `step` as a model; the new model's detail."""
        return _body(self.post(f"/api/jobs/{job_id}/checkpoints/{step}/register"))

    def delete_job(self, job_id: str) -> dict[str, Any]:
        return _body(self.delete(f"/api/jobs/{job_id}"))

    def stop(self, job_id: Optional[str] = None) -> dict[str, Any]:
        return _body(self.post("/api/stop_training", params={"job_id": job_id} if job_id else None))

    def resume(self, job_id: str) -> dict[str, Any]:
        return _body(self.post(f"/api/jobs/{job_id}/resume"))

    def models(self) -> list[dict[str, Any]]:
        return _body(self.get("/api/models"))["models"]

    def model(self, model_id: int) -> dict[str, Any]:
        return _body(self.get(f"/api/models/{model_id}"))

    def update_model(self, model_id: int, **changes: Optional[str]) -> dict[str, Any]:
        """PATCH /api/models/{id}: set `name` and/or `description`; the model's detail after the change."""
        return _body(self.request("PATCH", f"/api/models/{model_id}", json=changes))

    def delete_model(self, model_id: int) -> dict[str, Any]:
        return _body(self.delete(f"/api/models/{model_id}"))

    def merge_model(self, model_id: int, timeout: float = 3600.0) -> dict[str, Any]:
        """POST /api/models/{id}/merge: `message`, `source_model_id` and the new merged `model`.

        The merge loads and saves the whole base, so it waits longer than other calls by default.
        """
        return _body(self.post(f"/api/models/{model_id}/merge", timeout=timeout))

    def download_model(self, model_id: int, folder: Path) -> Path:
        """GET /api/models/{id}/download, extracted into `folder` as it arrives; the model's folder inside it."""
        import tarfile

        with self.get(f"/api/models/{model_id}/download", stream=True) as response:
            if response.status_code != 200:
                raise ForgeClientError(response)
            response.raw.decode_content = True
            with tarfile.open(fileobj=response.raw, mode="r|gz") as archive:
                top = None
                for member in archive:
                    top = top or member.name.split("/", 1)[0]
                    # The "data" filter refuses absolute paths, links out of `folder` and device files.
                    archive.extract(member, folder, filter="data")
        if top is None:
            raise ValueError(f"model {model_id}'s archive is empty")
        return Path(folder) / top

    def datasets(self) -> list[dict[str, Any]]:
        return _body(self.get("/api/datasets"))["datasets"]

    def dataset(self, filename: str, offset: int = 0, limit: int = 20) -> dict[str, Any]:
        """GET /api/datasets/{filename}: its format, rows and size, and rows `offset` .. `offset + limit - 1`."""
        return _body(self.get(f"/api/datasets/{filename}", params={"offset": offset, "limit": limit}))

    def delete_dataset(self, filename: str) -> dict[str, Any]:
        return _body(self.delete(f"/api/datasets/{filename}"))

    def generate(self, model_id: int, prompt: str, **options: Any) -> dict[str, Any]:
        """POST /api/playground/generate; `options` are the request's other fields (max_new_tokens, ...)."""
        return _body(self.post("/api/playground/generate", json={"model_id": model_id, "prompt": prompt, **options}))

    def info(self) -> dict[str, Any]:
        return _body(self.get("/api/info"))

    def health(self) -> dict[str, Any]:
        return _body(self.get("/api/health"))


def _body(response: requests.Response) -> Any:
    if not 200 <= response.status_code < 300:
        raise ForgeClientError(response)
    return response.json()
