"""The whole service stopped with Ctrl-C and started again loses nothing, and resumes the job it cut off.

This test runs the real command line (`serve run` with a config file that only
picks a free port), in its own Ray instance with its own FORGE_HOME: Ctrl-C
takes down Serve, the manager, the training workers and that Ray instance, as it
does for a user of `make serve`.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from pathlib import Path

import pytest
from support import (
    REPO,
    SAMPLE_DATASET,
    Service,
    assert_error_shape,
    free_port,
    share_builtin_models,
    wait_for_registered_checkpoint,
    wait_healthy,
)

from forge.schemas import TERMINAL_STATUSES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class ServeProcess:
    """`serve run` in a child process, stopped the way a user stops it: SIGINT."""

    def __init__(self, config: Path, home: Path, log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FORGE_"))}
        # RAY_ADDRESS=local: `serve run` starts its own instance, as on a machine with no other Ray.
        env.update(FORGE_HOME=str(home), RAY_TRAIN_ENABLE_PRINT_PATCH="0", RAY_ADDRESS="local")
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "serve"), "run", str(config)], cwd=REPO, env=env,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            # As in a terminal, Ctrl-C must reach it: a shell that runs the suite in the background
            # hands its children SIGINT ignored, and Python then installs no KeyboardInterrupt for it.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def wait_healthy(self, url: str) -> None:
        wait_healthy(url, alive=lambda: self.process.poll() is None)

    def interrupt(self, timeout: float = 90) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
            self._log.close()


def _digest(folder: Path) -> dict[str, str]:
    return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(folder.rglob("*")) if f.is_file()}


def test_ctrl_c_and_restart_keeps_everything_and_the_cut_off_job_resumes(tmp_path: Path, builtin_dir: Path):
    from forge.builtin import ensure_builtin

    port = free_port()
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"http_options:\n  host: 127.0.0.1\n  port: {port}\n"
        "applications:\n- name: modelforge\n  route_prefix: /\n  import_path: deployments.app:app\n"
    )
    home = tmp_path / "home"
    ensure_builtin("forge/tiny-llama", builtin_dir)  # the session's build, not one more in the service's runner
    share_builtin_models(builtin_dir, home)
    service = Service(url=f"http://127.0.0.1:{port}", ws_url=f"ws://127.0.0.1:{port}", home=home)

    first = ServeProcess(config, home, tmp_path / "serve.log")
    try:
        first.wait_healthy(service.url)
        dataset = service.upload(SAMPLE_DATASET, name="restart.jsonl").json()["filename"]
        # Two jobs, one after the other (on two cores, side by side is slower): one finishes, the
        # next is cut off. Its checkpoints every 25 steps come a few seconds in, long before step 200
        # (batch 16: about a tenth of a second per tiny step). The margin matters: on a busy machine Ray
        # Train records a checkpoint seconds after it is saved, and the service takes seconds to stop.
        done = service.start(dataset=dataset, max_steps=2, eval_split=0).json()["job_id"]
        finished = service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, done)
        assert finished["status"] == "completed"
        cut_off = service.start(dataset=dataset, max_steps=200, save_steps=25, per_device_train_batch_size=16,
                                gradient_accumulation_steps=1, eval_split=0).json()["job_id"]
        wait_for_registered_checkpoint(service, cut_off)
        before = {
            "models": service.get("/api/models").json(),
            "datasets": service.get("/api/datasets").json(),
            "finished_job": service.status(done),
        }
        model_files = _digest(home / "models" / str(finished["model_id"]))
        running = service.status(cut_off)
        assert running["status"] == "training" and running["current_step"] < 200, running
    finally:
        first.interrupt()
    assert first.process.returncode is not None

    second = ServeProcess(config, home, tmp_path / "serve.log")
    try:
        second.wait_healthy(service.url)
        assert service.get("/api/models").json() == before["models"]
        assert service.get("/api/datasets").json() == before["datasets"]
        assert service.status(done) == before["finished_job"]
        assert _digest(home / "models" / str(finished["model_id"])) == model_files

        interrupted = service.status(cut_off)
        assert interrupted["status"] == "interrupted", interrupted
        assert f"/api/jobs/{cut_off}/resume" in interrupted["message"]
        checkpoint_step = int(interrupted["message"].split("checkpoint at step ")[1].split()[0].rstrip(":"))
        assert checkpoint_step >= 25

        resumed = service.post(f"/api/jobs/{cut_off}/resume")
        assert resumed.status_code == 200, resumed.text
        final = service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, cut_off, timeout=300)
        assert final["status"] == "completed" and final["current_step"] == 200, final
        events = service.events(cut_off)
        # The manager named the checkpoint Ray Train really resumed from.
        assert f"workers started, continuing from the checkpoint at step {checkpoint_step}" in [
            e["message"] for e in events]
        # The request was re-read as the user sent it: no new substitution notes on resume.
        notes = [e["message"] for e in events if e["kind"] == "substitution"]
        assert len(notes) == len(set(notes))
        generated = service.post("/api/playground/generate", json={
            "model_id": final["model_id"], "prompt": "What is 3 plus 4?", "max_new_tokens": 4, "temperature": 0})
        assert generated.status_code == 200, generated.text
        assert_error_shape(service.post(f"/api/jobs/{cut_off}/resume"), 409)
    finally:
        second.interrupt()
