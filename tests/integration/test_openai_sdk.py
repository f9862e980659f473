"""The /v1 routes through the official `openai` SDK, over real HTTP, against the session's service.

The models are the session's `trained_models` (two LoRA fine-tunes of forge/tiny-llama,
which has no chat template). What is compared, precisely: with temperature 0 and the
same token budget, a chat completion of one user message PROMPT, the same request
streamed (its chunks' text joined), a text completion of PROMPT (whole and streamed) and
POST /api/playground/generate with prompt PROMPT all carry the same text. They must:
the model sees the same prompt for each (a single user message renders exactly as the
playground's prompt, `### Instruction:\\n{PROMPT}\\n\\n### Response:\\n`) and greedy
decoding is deterministic.
"""

from __future__ import annotations

import secrets

import openai
import pytest
import requests
from support import NO_PLAYGROUND, Service, assert_error_shape, keyed_app

pytestmark = pytest.mark.integration

PROMPT = "What is 3 plus 4?"
MAX_TOKENS = 12
KEY = "forge-openai-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def client(service: Service) -> openai.OpenAI:
    # No FORGE_API_KEY on the session's service: any string will do as the SDK's key.
    return openai.OpenAI(base_url=f"{service.url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def model_name(service: Service, trained_models: list[dict]) -> str:
    return service.get(f"/api/models/{trained_models[0]['model_id']}").json()["name"]


@pytest.fixture(scope="module")
def playground_text(service: Service, trained_models: list[dict]) -> str:
    body = {"model_id": trained_models[0]["model_id"], "prompt": PROMPT, "max_new_tokens": MAX_TOKENS,
            "temperature": 0}
    response = service.post("/api/playground/generate", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["generated_text"], "the trained model should say something"
    return response.json()["generated_text"]


def chat(client: openai.OpenAI, model: str, **options):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": PROMPT}],
                                          temperature=0, max_tokens=MAX_TOKENS, **options)


def test_models_lists_the_trained_models_by_name_and_the_builtin_bases(
        client: openai.OpenAI, service: Service, trained_models: list[dict]):
    listed = {model.id: model for model in client.models.list()}
    names = [service.get(f"/api/models/{final['model_id']}").json()["name"] for final in trained_models]
    for name in names:
        assert listed[name].owned_by == "user" and listed[name].created > 0
    assert listed["forge/tiny-llama"].owned_by == "system"
    assert client.models.retrieve(names[0]).id == names[0]
    assert client.models.retrieve("forge/tiny-llama").id == "forge/tiny-llama"  # the SDK sends forge%2Ftiny-llama


def test_chat_whole_and_streamed_say_what_the_playground_says(
        client: openai.OpenAI, model_name: str, playground_text: str):
    whole = chat(client, model_name)
    assert whole.model == model_name and whole.choices[0].message.role == "assistant"
    assert whole.choices[0].message.content == playground_text
    assert whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage.completion_tokens >= 1
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens

    chunks = list(chat(client, model_name, stream=True, stream_options={"include_usage": True}))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1, "a stream should carry the text in several pieces"
    assert "".join(pieces) == playground_text
    assert chunks[0].choices[0].delta.role == "assistant"
    finishing = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishing == [whole.choices[0].finish_reason]
    # include_usage: one last chunk with no choices and the counts, the same as the whole answer's.
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert len({c.id for c in chunks}) == 1


def test_a_stream_without_include_usage_has_no_usage(client: openai.OpenAI, model_name: str):
    chunks = list(chat(client, model_name, stream=True))
    assert all(c.usage is None for c in chunks) and chunks[-1].choices[0].finish_reason


def test_the_stream_ends_with_done_over_plain_http(service: Service, model_name: str):
    body = {"model": model_name, "messages": [{"role": "user", "content": PROMPT}], "stream": True,
            "max_tokens": 3}
    response = requests.post(f"{service.url}/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = [line for line in response.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)


def test_a_client_that_leaves_mid_stream_leaves_the_model_answering(
        service: Service, client: openai.OpenAI, model_name: str, playground_text: str):
    body = {"model": model_name, "prompt": PROMPT, "stream": True, "max_tokens": 1024, "temperature": 1}
    with requests.post(f"{service.url}/v1/completions", json=body, stream=True, timeout=120) as response:
        assert response.status_code == 200
        assert next(response.iter_lines()).startswith(b"data: ")
    # The replica's generation was cancelled, not left holding the model: the next answer is as before.
    assert chat(client, model_name).choices[0].message.content == playground_text


def test_text_completions_whole_and_streamed(client: openai.OpenAI, model_name: str, playground_text: str):
    whole = client.completions.create(model=model_name, prompt=PROMPT, temperature=0, max_tokens=MAX_TOKENS)
    assert whole.choices[0].text == playground_text
    chunks = list(client.completions.create(model=model_name, prompt=PROMPT, temperature=0, max_tokens=MAX_TOKENS,
                                            stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == playground_text
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_stop_and_max_tokens_are_honoured(client: openai.OpenAI, model_name: str, playground_text: str):
    short = chat(client, model_name, max_completion_tokens=2)
    assert short.usage.completion_tokens <= 2 and playground_text.startswith(short.choices[0].message.content)
    stop = playground_text.strip()[len(playground_text.strip()) // 2]
    stopped = chat(client, model_name, stop=[stop])
    assert stopped.choices[0].message.content == playground_text[:playground_text.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"


def test_an_unknown_model_is_not_found(client: openai.OpenAI):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.param == "model" and "no-such-model" in caught.value.message
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
    with pytest.raises(openai.NotFoundError):  # streamed: refused before the stream begins
        client.completions.create(model="no-such-model", prompt="hi", stream=True)


@pytest.mark.parametrize("options,param", [
    ({"n": 2}, "n"), ({"temperature": -1}, "temperature"),
    ({"tools": [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]}, "tools"),
])
def test_a_bad_parameter_is_a_bad_request_naming_it(client: openai.OpenAI, model_name: str, options: dict,
                                                    param: str):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": "hi"}], **options)
    assert caught.value.param == param and caught.value.status_code == 400


def test_images_and_builtin_bases_are_refused(client: openai.OpenAI, model_name: str):
    image = [{"type": "text", "text": "what is it?"},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": image}])
    assert caught.value.param.startswith("messages") and "image_url" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="forge/tiny-llama", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "model_not_callable"


def test_api_routes_keep_the_contract_s_error_shape(service: Service):
    assert_error_shape(service.get("/api/no-such-route"), 404)
    assert_error_shape(service.post("/api/playground/generate", json={"model_id": 1, "temperature": -1}), 400)
    unknown = service.get("/v1/no-such-route")
    assert unknown.status_code == 404 and set(unknown.json()["error"]) == {"message", "type", "param", "code"}


@pytest.fixture(scope="module")
def secured(service: Service):
    """The real ingress again, built with an API key, under /openai-secured (same manager and cluster)."""
    with keyed_app(service, "openai-secured", KEY, **NO_PLAYGROUND) as secured:
        yield f"{secured.url}/v1"


def test_a_wrong_key_is_an_authentication_error(secured: str, model_name: str):
    for key in ("wrong", KEY[:-1]):
        with pytest.raises(openai.AuthenticationError) as caught:
            openai.OpenAI(base_url=secured, api_key=key, max_retries=0).models.list()
        assert "FORGE_API_KEY" in caught.value.message and KEY not in caught.value.message
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=secured, api_key="wrong", max_retries=0).chat.completions.create(
            model=model_name, messages=[{"role": "user", "content": "hi"}], stream=True)
    wrong = openai.OpenAI(base_url=secured, api_key="wrong", max_retries=0)
    for call in (wrong.files.list, wrong.fine_tuning.jobs.list):  # the fine-tuning half is guarded alike
        with pytest.raises(openai.AuthenticationError):
            call()
    # The right key: the same manager's models, listed by name.
    listed = [m.id for m in openai.OpenAI(base_url=secured, api_key=KEY, max_retries=0).models.list()]
    assert model_name in listed
