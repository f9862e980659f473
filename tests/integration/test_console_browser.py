"""The web console at /, used through the page only, in real headless Chromium.

A user's story: a refused upload shows its line errors; the sample dataset uploads;
the new-job form starts a forge/tiny-llama job; the loss chart gains points while the
job trains; the job completes and its model appears; the playground streams an
answer; the model is renamed and downloaded. Then the same with FORGE_API_KEY set
(the key asked once, a wrong one said so, the WebSocket authenticated without the
key in its URL); the form's refusals; the Ray dashboard with the token `make serve`
points to; /docs offline. Screenshots of each page land in tmp/artifacts/console/.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from browser_support import PHONE, browser_context, chromium_path, fits_width, sample_until, screenshot
from support import SAMPLE_DATASET, Service, keyed_app

from forge.schemas import TERMINAL_STATUSES

pytestmark = pytest.mark.integration

KEY = "console-" + secrets.token_hex(12)
# Enough steps that the job trains for a few seconds (the tiny model takes tens of ms a step, and
# logs every step; the feed delivers every 0.2 s): the page draws many points while it trains.
STORY_STEPS = 60


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def keyed(service: Service):
    """A second app of the real ingress with FORGE_API_KEY set, under /keyed (same manager, same cluster)."""
    with keyed_app(service, "keyed", KEY) as keyed:
        yield keyed


def bad_dataset(tmp_path: Path) -> Path:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"input": "a", "output": "b"}\n{"input": "no output"}\nnot json at all\n')
    return path


def upload(page, path: Path) -> None:
    page.get_by_role("link", name="Datasets").click()
    page.set_input_files("#dataset-file", str(path))


def start_job(page, dataset: str, steps: int) -> str:
    """Fill the new-job form for forge/tiny-llama and submit it; the job's id from the page it opens."""
    page.get_by_role("link", name="New job").click()
    page.select_option("#field-task", "text-generation")
    page.select_option("#field-strategy", "sft")
    page.select_option("#field-provider", "huggingface")
    page.fill("#field-model_name", "forge/tiny-llama")
    page.select_option("#field-dataset", dataset)
    page.fill("#field-max_steps", str(steps))
    page.fill("#field-learning_rate", "0.005")
    page.click("#new-job-form summary")
    page.fill("#field-eval_steps", str(steps // 3))
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(re.compile(r"#/jobs/train_"))
    return page.url.rsplit("/", 1)[1]


def watch_training(page, job_id: str) -> list[tuple[str, int]]:
    """(status shown, loss points drawn) as the page changes, until the job completes."""
    page.wait_for_selector("#chart-loss")
    read = lambda: (page.inner_text("#job-status .badge"), int(page.get_attribute("#chart-loss", "data-points")))  # noqa: E731
    return sample_until(read, lambda r: r[0] in ("completed", "failed", "stopped"))


def story(page, base: str, tmp_path: Path, name: str) -> dict:
    """The user's story through the page; returns what the test asserts on at the end."""
    page.goto(base + "/")
    page.wait_for_selector("text=healthy")
    screenshot(page, f"{name}-overview")

    upload(page, bad_dataset(tmp_path))
    errors = page.locator("#upload-errors tbody tr")
    errors.first.wait_for()
    cells = [errors.nth(i).locator("td").all_inner_texts() for i in range(errors.count())]
    by_line = {line: error for line, error in cells}
    assert "output" in by_line["2"] and "JSON" in by_line["3"], cells
    screenshot(page, f"{name}-datasets-refused")

    dataset = f"{name}_story_{secrets.token_hex(3)}.jsonl"
    (tmp_path / dataset).write_bytes(SAMPLE_DATASET.read_bytes())
    page.set_input_files("#dataset-file", str(tmp_path / dataset))
    page.wait_for_selector(f"#upload-result .ok:has-text('{dataset}')")
    page.wait_for_selector(f"tr[data-dataset='{dataset}']")
    screenshot(page, f"{name}-datasets")

    job_id = start_job(page, dataset, STORY_STEPS)
    readings = watch_training(page, job_id)
    page.wait_for_selector("#job-model")
    page.wait_for_selector("#job-charts[data-final]")
    # A completed job offers neither stop nor resume.
    assert not page.get_by_role("button", name="Stop").is_visible()
    assert not page.get_by_role("button", name="Resume").is_visible()
    screenshot(page, f"{name}-job")

    page.click("#job-model")
    page.wait_for_selector("#model-title")
    new_name = f"{name}-model-{secrets.token_hex(3)}"
    page.fill("#model-name", new_name)
    page.get_by_role("button", name="Rename").click()
    page.wait_for_selector(f"#model-note:has-text('Renamed to {new_name}')")
    with page.expect_download() as download:
        page.click("#model-download")
    archive = tmp_path / f"{name}-model.tar.gz"
    download.value.save_as(archive)  # the browser's own copy goes with its context
    screenshot(page, f"{name}-model")

    page.get_by_role("link", name="Try it in the playground").click()
    page.fill("#pg-prompt", "What is 3 plus 4?")
    page.fill("#pg-temperature", "0")
    page.fill("#pg-max-tokens", "48")
    page.check("#pg-compare")
    # Every change of the answer's text as it streams in, recorded by the page itself.
    page.evaluate("""() => {
        window.growth = {};
        for (const answer of document.querySelectorAll('.answer')) {
            const seen = window.growth[answer.id] = [];
            new MutationObserver(() => seen.push([answer.dataset.state, answer.textContent.length]))
                .observe(answer, {childList: true, characterData: true, subtree: true, attributes: true});
        }
    }""")
    # And the streams the page read: the model's answer and its base's, each its own request.
    streams: list = []
    page.on("response",
            lambda r: streams.append(r) if r.url.endswith("/api/playground/generate/stream") else None)
    page.click("#pg-generate")
    page.wait_for_selector("#pg-answer[data-state='done']")
    page.wait_for_selector("#pg-base-answer[data-state='done']")
    growth = page.evaluate("window.growth")
    pieces = {("pg-base-answer" if json.loads(r.request.post_data).get("use_base") else "pg-answer"):
              r.text().count("event: token\n") for r in streams}
    texts = page.evaluate("Object.fromEntries([...document.querySelectorAll('.answer')].map(a => [a.id, a.textContent]))")
    screenshot(page, f"{name}-playground")
    page.get_by_role("link", name="Models").click()
    page.wait_for_selector(f"#model-list >> text={new_name}")
    return {"job_id": job_id, "readings": readings, "archive": archive, "growth": growth, "texts": texts,
            "pieces": pieces}


def assert_story(result: dict) -> None:
    readings = result["readings"]
    training = [points for status, points in readings if status == "training"]
    # The chart gained points while the job was training (drawn as the feed delivered steps).
    assert any(b > a > 0 for a, b in zip(training, training[1:])), readings
    assert readings[-1][0] == "completed", readings[-1]
    # Both answers (the model's, then its base's) only grew while they streamed, then ended. The
    # stream sends whole words, so an answer of several words arrives in several pieces; a greedy
    # answer may be one short word, but the base's random weights answer with many. (Pieces that
    # reach the browser together may show as one change of the page: the pieces are counted in
    # the streams it read.)
    several_words = []
    for answer_id, seen in result["growth"].items():
        streamed = [length for state, length in seen if state == "streaming" and length > 0]
        assert streamed == sorted(streamed) and seen[-1][0] == "done", result["growth"]
        if len(re.findall(r"[^ \n]+", result["texts"][answer_id])) >= 2:
            several_words.append(answer_id)
            assert result["pieces"][answer_id] >= 2, (answer_id, result["texts"][answer_id], result["pieces"], seen)
    assert several_words, result["texts"]  # the piece-by-piece check above ran
    with tarfile.open(result["archive"]) as archive:
        names = archive.getnames()
    assert any(n.endswith("/adapter_config.json") for n in names) and any(n.endswith("/README.md") for n in names)


def test_a_user_trains_and_tries_a_model_through_the_page(service: Service, browser, tmp_path: Path):
    with browser_context(browser) as (context, watched):
        watched.expected_statuses = (400,)  # the refused upload
        result = story(context.new_page(), service.url, tmp_path, "open")
    assert_story(result)
    assert (watched.external, watched.unexpected_errors()) == ([], [])


def test_the_same_story_with_an_api_key(keyed: Service, browser, tmp_path: Path):
    with browser_context(browser) as (context, watched):
        watched.expected_statuses = (400, 401)
        page = context.new_page()
        page.goto(keyed.url + "/")
        # Asked once; a wrong key is said to be wrong, never a blank page.
        page.wait_for_selector("#key-dialog[open]")
        screenshot(page, "keyed-key-prompt")
        page.fill("#key-input", "not-the-key")
        page.get_by_role("button", name="Use this key").click()
        page.wait_for_selector("#key-error:has-text('refused that key')")
        assert "Wrong API key" in page.inner_text("#notice")
        page.fill("#key-input", KEY)
        page.get_by_role("button", name="Use this key").click()
        page.wait_for_selector("text=healthy")
        assert page.evaluate("sessionStorage.getItem('forge-api-key')") == KEY
        result = story(page, keyed.url, tmp_path, "keyed")
        # The training feed authenticated without the key in any URL the page opened.
        assert not any(KEY in url for url in page.evaluate("performance.getEntries().map(e => e.name)"))
    assert_story(result)
    assert (watched.external, watched.unexpected_errors()) == ([], [])


def test_the_form_offers_only_what_trains_and_shows_400s_by_their_field(service: Service, browser):
    info = service.get("/api/info").json()
    supported = {(c["task"], c["strategy"], c["provider"]) for c in info["supported"]}
    uploaded = service.upload(SAMPLE_DATASET, name="form_check.jsonl")
    assert uploaded.status_code == 200, uploaded.text
    with browser_context(browser) as (context, watched):
        watched.expected_statuses = (400,)
        page = context.new_page()
        page.goto(service.url + "/#/new")
        page.wait_for_selector("#new-job-form")
        for task in info["tasks"]:
            page.select_option("#field-task", task)
            disabled = set(page.eval_on_selector_all("#field-strategy option:disabled", "os => os.map(o => o.value)"))
            trainable = {s for s in info["strategies"] if any((task, s, p) in supported for p in info["providers"])}
            assert disabled == set(info["strategies"]) - trainable, task
            # A strategy that does not train for the task cannot be picked, even when set underneath the page.
            for strategy in disabled:
                page.eval_on_selector("#field-strategy",
                                      "(s, v) => { s.value = v; s.dispatchEvent(new Event('change')); }", strategy)
                assert page.input_value("#field-strategy") != strategy
            combo = tuple(page.input_value(f"#field-{n}") for n in ("task", "strategy", "provider"))
            assert combo in supported and page.is_enabled("text=Start training")
        screenshot(page, "new-job")

        page.select_option("#field-task", "text-generation")
        page.select_option("#field-strategy", "sft")
        page.fill("#field-model_name", "forge/tiny-llama")
        page.select_option("#field-dataset", "form_check.jsonl")
        page.click("#new-job-form summary")
        page.fill("#field-num_workers", "5")  # more workers than the 2-CPU cluster has: the service says so
        page.get_by_role("button", name="Start training").click()
        page.wait_for_selector("#error-num_workers:has-text('num_workers=5 needs 5 CPUs')")
        page.fill("#field-num_workers", "1")
        page.fill("#field-learning_rate", "5")  # out of range: refused by the request's own validation
        page.get_by_role("button", name="Start training").click()
        page.wait_for_selector("#error-learning_rate:has-text('less than or equal to 1')")
        assert page.inner_text("#error-num_workers") == ""
        screenshot(page, "new-job-refused")
    assert (watched.external, watched.unexpected_errors()) == ([], [])


def test_docs_and_the_console_work_offline_and_at_phone_width(service: Service, browser):
    with browser_context(browser) as (context, watched):
        page = context.new_page()
        page.goto(service.url + "/docs")
        page.wait_for_selector(".swagger-ui .info .title:has-text('ModelForge')")
        page.wait_for_selector("[data-path='/api/playground/generate/stream']")
        screenshot(page, "docs")
        page.goto(service.url + "/redoc")
        page.wait_for_selector("h1:has-text('ModelForge')")
    assert (watched.external, watched.unexpected_errors()) == ([], [])
    with browser_context(browser, viewport=PHONE) as (context, watched):
        page = context.new_page()
        pages = [("#/", "text=healthy"), ("#/datasets", "#dataset-drop"), ("#/new", "#new-job-form"),
                 ("#/jobs", "#job-list table, #job-list a"), ("#/models", "main h1"), ("#/playground", "main h1")]
        jobs = service.get("/api/jobs?limit=1").json()["jobs"]  # one of the session's, when it has run any
        pages += [(f"#/jobs/{job['job_id']}", "#job-charts[data-final]") for job in jobs]
        for hash_, ready in pages:
            page.goto(f"{service.url}/{hash_}")
            page.wait_for_selector(ready)
            assert fits_width(page), hash_
            section = hash_.strip("#/").split("/")[0] or "overview"
            screenshot(page, f"phone-{section}{'-detail' if hash_.count('/') > 1 else ''}")
    assert (watched.external, watched.unexpected_errors()) == ([], [])


def test_the_ray_dashboard_shows_a_running_job(service: Service, browser):
    """Opened from the job page's link, with the token `make serve` points to (`ray get-auth-token`)."""
    ray_cli = Path(sys.executable).with_name("ray")
    token = subprocess.run([str(ray_cli), "get-auth-token"], capture_output=True, text=True, check=True).stdout.strip()
    uploaded = service.upload(SAMPLE_DATASET, name="dashboard_check.jsonl")
    assert uploaded.status_code == 200, uploaded.text
    with browser_context(browser) as (context, _):
        page = context.new_page()
        page.goto(service.url + "/")
        job_id = start_job(page, "dashboard_check.jsonl", 3000)
        try:
            page.wait_for_selector("#job-dashboard[href*='/tasks/']", state="attached", timeout=120_000)
            with context.expect_page() as opened:
                page.click("#job-dashboard")
            dashboard = opened.value
            dashboard.get_by_placeholder("Enter your authentication token").fill(token)
            dashboard.keyboard.press("Enter")
            dashboard.wait_for_selector(f"text={job_id}", timeout=60_000)
            assert "RUNNING" in dashboard.inner_text("body")
            screenshot(dashboard, "ray-dashboard-job")
            page.get_by_role("button", name="Stop").click()
            page.wait_for_selector("#job-status .badge:has-text('stopped')", timeout=120_000)
        finally:  # a failure above must not leave the long job holding the session's only slot
            if service.status(job_id)["status"] not in TERMINAL_STATUSES:
                service.post("/api/stop_training", params={"job_id": job_id})
                service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, job_id, timeout=120)
