"""Dataset rules: row formats, validation and normalisation (the names they are stored under: dataset_names).

Pure Python on purpose: the ingress validates uploads before anything heavy
(torch, transformers, datasets) is loaded, and the same report is shown to the
client, so every error names its 1-based line and says what is wrong.

A dataset has a FORMAT (the shape of its rows), not a task: the same shape
trains several tasks (forge/catalog.py says which). Common alias fields (and
ShareGPT conversations) are accepted and rewritten into the canonical row at
validation time; `read_examples` gives the training workers canonical rows only.
Uploads of other file types (CSV, Parquet, a JSON array) are turned into rows by
`forge.dataset_files` and validated here the same way.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Callable, Iterable, Iterator, Optional

from forge.errors import BadRequest
from forge.schemas import DatasetFormat, LineError, ValidationReport

MIN_EXAMPLES = 10
MAX_REPORTED_ERRORS = 50

FORMATS: tuple[str, ...] = ("pairs", "chat", "preference", "qa", "text")
assert FORMATS == DatasetFormat.__args__, "FORMATS must match the contract's DatasetFormat"

# Used when detection finds no format: rows are checked against it so the
# errors say which fields are missing.
_FALLBACK_FORMAT = "pairs"

# `pairs` shapes as (input field, output field), canonical first. Alpaca rows
# (instruction, optional input, output) are recognised before these.
_PAIR_SHAPES = (("input", "output"), ("instruction", "response"), ("prompt", "completion"), ("document", "summary"))
_CHAT_ROLES = {role: role for role in ("system", "user", "assistant")}
# ShareGPT (LLaMA-Factory's most common shape): {"conversations": [{"from": ..., "value": ...}]}.
_SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "system": "system"}
_SHAREGPT_ALIAS = {"conversations": "messages", "from human/gpt/system": "role user/assistant/system",
                   "value": "content"}
_SQUAD_ALIAS = {"answers": "answer, answer_start"}
# OpenAI's DPO rows: {"input": {"messages": [user]}, "preferred_output": [assistant], "non_preferred_output": [...]}.
_OPENAI_PREFERENCE_FIELDS = ("input", "preferred_output", "non_preferred_output")
_OPENAI_PREFERENCE_ALIAS = {"input.messages": "prompt", "preferred_output": "chosen",
                            "non_preferred_output": "rejected"}

_BOM = b"\xef\xbb\xbf"
# What is stored (every upload becomes JSONL), and what an upload may be called by default.
STORED_SUFFIX = ".jsonl"


class _InvalidRow(ValueError):
    """One row breaks its format's rules; the message is shown to the client."""


def _type_name(value: Any) -> str:
    """Name of a parsed JSON value's type, as a client would recognise it."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is a subclass of int
        return "boolean"
    return {dict: "object", list: "array", str: "string"}.get(type(value), type(value).__name__)


def _require(obj: dict[str, Any], fields: tuple[str, ...], where: str = "") -> None:
    """Raise naming every field of `fields` that `obj` lacks."""
    missing = [f"'{where}{field}'" for field in fields if field not in obj]
    if missing:
        raise _InvalidRow("missing " + ("field " if len(missing) == 1 else "fields ") + ", ".join(missing))


def _text(value: Any, name: str) -> str:
    """`value` if it is a non-blank string, else raise naming the field."""
    if not isinstance(value, str):
        raise _InvalidRow(f"field '{name}' must be a string, got {_type_name(value)}")
    if not value.strip():
        raise _InvalidRow(f"field '{name}' is empty")
    return value


def _strings(row: dict[str, Any], fields: tuple[str, ...]) -> list[str]:
    """The non-blank string values of `fields`, missing ones all named in one error."""
    _require(row, fields)
    return [_text(row[field], field) for field in fields]


# ----------------------------------------------------------- format rules
# Each rule takes a JSON object row and returns (canonical row, alias -> canonical
# mapping used), or raises _InvalidRow.

_Normalized = tuple[dict[str, Any], dict[str, str]]
_Rule = Callable[[dict[str, Any]], _Normalized]


def _pairs_shape(row: dict[str, Any]) -> tuple[tuple[str, str], dict[str, str]] | None:
    """(fields, alias mapping) of the first `pairs` shape complete in `row`, Alpaca first; else None."""
    if "instruction" in row and "output" in row:
        return ("instruction", "output"), {"instruction, input" if "input" in row else "instruction": "input"}
    shape = next((shape for shape in _PAIR_SHAPES if all(field in row for field in shape)), None)
    if shape is None:
        return None
    return shape, {} if shape == _PAIR_SHAPES[0] else {shape[0]: "input", shape[1]: "output"}


def _pairs(row: dict[str, Any]) -> _Normalized:
    # No complete shape: check the one sharing most fields, so the error names what is missing.
    shape, aliases = _pairs_shape(row) or (max(_PAIR_SHAPES, key=lambda s: sum(f in row for f in s)), {})
    source, target = _strings(row, shape)
    if shape == ("instruction", "output"):  # Alpaca: a non-blank `input` (optional) follows the instruction
        extra = row.get("input", "")
        if not isinstance(extra, str):
            raise _InvalidRow(f"field 'input' must be a string, got {_type_name(extra)}")
        if extra.strip():
            source = f"{source}\n\n{extra}"
    return {"input": source, "output": target}, aliases


def _chat(row: dict[str, Any]) -> _Normalized:
    if "messages" not in row and "conversations" in row:
        messages, aliases = _turns(row, "conversations", ("from", "value"), _SHAREGPT_ROLES), dict(_SHAREGPT_ALIAS)
    else:
        messages, aliases = _turns(row, "messages", ("role", "content"), _CHAT_ROLES), {}
    if not any(message["role"] == "user" for message in messages):
        raise _InvalidRow("messages have no user message")
    if messages[-1]["role"] != "assistant":
        raise _InvalidRow(f"last message must be from the assistant, got '{messages[-1]['role']}'")
    return {"messages": messages}, aliases


def _turns(row: dict[str, Any], field: str, keys: tuple[str, str], roles: dict[str, str]) -> list[dict[str, Any]]:
    """The conversation in `field` as canonical messages; `keys` (speaker, text) and `roles` as the row names them.

    Errors name the fields the user wrote (ShareGPT's `conversations[1].value`, not `messages[1].content`).
    """
    _require(row, (field,))
    turns = row[field]
    if not isinstance(turns, list):
        raise _InvalidRow(f"field '{field}' must be an array, got {_type_name(turns)}")
    if not turns:
        raise _InvalidRow(f"field '{field}' is empty")
    speaker_key, text_key = keys
    *others, last = map(repr, roles)
    messages = []
    for index, turn in enumerate(turns):
        where = f"{field}[{index}]"
        if not isinstance(turn, dict):
            raise _InvalidRow(f"field '{where}' must be an object, got {_type_name(turn)}")
        _require(turn, keys, where=f"{where}.")
        speaker = turn[speaker_key]
        if not isinstance(speaker, str) or speaker not in roles:
            raise _InvalidRow(f"field '{where}.{speaker_key}' must be {', '.join(others)} or {last}, "
                              f"got {json.dumps(speaker)}")
        messages.append({"role": roles[speaker], "content": _text(turn[text_key], f"{where}.{text_key}")})
    return messages


def _plain_text(row: dict[str, Any]) -> _Normalized:
    (text,) = _strings(row, ("text",))
    return {"text": text}, {}


def _preference(row: dict[str, Any]) -> _Normalized:
    if "prompt" not in row and "preferred_output" in row:
        (prompt, chosen, rejected), aliases = _openai_preference(row), dict(_OPENAI_PREFERENCE_ALIAS)
    else:
        (prompt, chosen, rejected), aliases = _strings(row, ("prompt", "chosen", "rejected")), {}
    if chosen.strip() == rejected.strip():
        raise _InvalidRow("chosen and rejected are identical")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}, aliases


def _openai_preference(row: dict[str, Any]) -> list[str]:
    """(prompt, chosen, rejected) of an OpenAI DPO row: one user message, one assistant answer on each side.

    A preference row here holds a single prompt string, so a conversation (several turns, or a
    system message) is refused rather than flattened in a way training would not match.
    """
    _require(row, _OPENAI_PREFERENCE_FIELDS)
    given = row["input"]
    if not isinstance(given, dict):
        raise _InvalidRow(f"field 'input' must be an object, got {_type_name(given)}")
    messages = _turns({"input.messages": given.get("messages")}, "input.messages", ("role", "content"), _CHAT_ROLES)
    if [m["role"] for m in messages] != ["user"]:
        raise _InvalidRow("field 'input.messages' must hold one user message (conversations and system "
                          "messages are not supported in preference rows)")
    answers = []
    for field in _OPENAI_PREFERENCE_FIELDS[1:]:
        turns = _turns(row, field, ("role", "content"), _CHAT_ROLES)
        if len(turns) != 1 or turns[0]["role"] != "assistant":
            raise _InvalidRow(f"field '{field}' must hold one assistant message")
        answers.append(turns[0]["content"])
    return [messages[0]["content"], *answers]


def _qa(row: dict[str, Any]) -> _Normalized:
    if "answer" not in row and "answers" in row:  # SQuAD: the first of parallel lists
        context, question = _strings(row, ("context", "question"))
        answer, start = _first_squad_answer(row["answers"])
        start_name, aliases = "answers.answer_start[0]", dict(_SQUAD_ALIAS)
    else:
        context, question, answer = _strings(row, ("context", "question", "answer"))
        start, start_name, aliases = row.get("answer_start"), "answer_start", {}
    if answer not in context:
        raise _InvalidRow("answer does not occur in context")
    if start is None:
        start = context.find(answer)
    elif not isinstance(start, int) or isinstance(start, bool):
        raise _InvalidRow(f"field '{start_name}' must be an integer, got {_type_name(start)}")
    elif start < 0 or context[start : start + len(answer)] != answer:
        raise _InvalidRow(f"answer_start {start} does not point at the answer in context")
    return {"context": context, "question": question, "answer": answer, "answer_start": start}, aliases


def _first_squad_answer(answers: Any) -> tuple[str, Any]:
    if not isinstance(answers, dict):
        raise _InvalidRow(f"field 'answers' must be an object, got {_type_name(answers)}")
    _require(answers, ("text", "answer_start"), where="answers.")
    texts, starts = answers["text"], answers["answer_start"]
    for name, value in (("text", texts), ("answer_start", starts)):
        if not isinstance(value, list):
            raise _InvalidRow(f"field 'answers.{name}' must be an array, got {_type_name(value)}")
        if not value:
            raise _InvalidRow(f"field 'answers.{name}' is empty")
    if len(texts) != len(starts):
        raise _InvalidRow(f"'answers.text' has {len(texts)} items but 'answers.answer_start' {len(starts)}")
    return _text(texts[0], "answers.text[0]"), starts[0]


_RULES: dict[str, _Rule] = {"pairs": _pairs, "chat": _chat, "preference": _preference, "qa": _qa,
                             "text": _plain_text}
assert tuple(_RULES) == FORMATS


def _normalize(format: str, row: Any) -> _Normalized:
    if not isinstance(row, dict):
        raise _InvalidRow(f"expected a JSON object, got {_type_name(row)}")
    return _RULES[format](row)


def _check_format(format: str) -> None:
    if format not in _RULES:
        raise BadRequest(f"unsupported format {format!r}; supported: {', '.join(FORMATS)}")


# ------------------------------------------------------------------ public


def normalize_row(format: str, row: dict[str, Any]) -> dict[str, Any]:
    """`row` in the canonical form of `format`; ValueError (validation's message) when invalid."""
    _check_format(format)
    return _normalize(format, row)[0]


def detect_format(row: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """(format, alias -> canonical mapping) for a row, from its keys only; pairs when nothing matches."""
    if "context" in row and "question" in row:
        return "qa", dict(_SQUAD_ALIAS) if "answer" not in row and "answers" in row else {}
    if all(field in row for field in ("prompt", "chosen", "rejected")):
        return "preference", {}
    if all(field in row for field in _OPENAI_PREFERENCE_FIELDS):
        return "preference", dict(_OPENAI_PREFERENCE_ALIAS)
    if "messages" in row:
        return "chat", {}
    if "conversations" in row:
        return "chat", dict(_SHAREGPT_ALIAS)
    shape = _pairs_shape(row)
    if shape is None and "text" in row:  # plain language-model rows (TRL's "text" field)
        return "text", {}
    return "pairs", shape[1] if shape else {}


# One row as read from a file: (1-based line or row number, parsed value, why it could not be read).
Record = tuple[int, Any, Optional[str]]


def jsonl_records(path: pathlib.Path) -> Iterator[Record]:
    """(1-based line number, parsed value, error) for each non-blank line, streamed."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]  # editors on Windows like to add one
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield number, None, "line is not valid UTF-8"
                continue
            if not text.strip():
                continue
            try:
                yield number, json.loads(text), None
            except json.JSONDecodeError as exc:
                yield number, None, f"invalid JSON: {exc.msg} (column {exc.colno})"
            except RecursionError:
                yield number, None, "invalid JSON: nested too deeply"


def validate_jsonl(path: pathlib.Path, format: str | None = None) -> ValidationReport:
    """Check every line of a JSONL dataset; `format=None` detects it from the first object row.

    Streams the file line by line, so memory stays flat however large it is.
    Raises BadRequest for a format name this module does not know.
    """
    return validate_records(jsonl_records(path), format)


def validate_records(records: Iterable[Record], format: str | None = None) -> ValidationReport:
    """Check every record (rows as `jsonl_records` or `forge.dataset_files` read them); see `validate_jsonl`."""
    if format is not None:
        _check_format(format)
    errors: list[LineError] = []
    total_errors = 0
    num_examples = 0
    normalized: dict[str, str] = {}

    def report(line: int, message: str) -> None:
        nonlocal total_errors
        total_errors += 1
        if len(errors) < MAX_REPORTED_ERRORS:
            errors.append(LineError(line=line, error=message))

    for number, row, problem in records:
        if problem is not None:
            report(number, problem)
            continue
        # Rows before the first object fail the same way for every format,
        # so the format can be fixed here without a second pass.
        if format is None and isinstance(row, dict):
            format = detect_format(row)[0]
        try:
            _, aliases = _normalize(format or _FALLBACK_FORMAT, row)
        except _InvalidRow as exc:
            report(number, str(exc))
            continue
        num_examples += 1
        normalized.update(aliases)

    if num_examples < MIN_EXAMPLES:
        # Listed first (line 0 sorts before every line) so the cap never hides it.
        total_errors += 1
        message = f"dataset has {num_examples} valid examples; at least {MIN_EXAMPLES} are required"
        errors.insert(0, LineError(line=0, error=message))
        del errors[MAX_REPORTED_ERRORS:]

    return ValidationReport(
        valid=total_errors == 0, errors=errors, total_errors=total_errors, num_examples=num_examples,
        format=format or _FALLBACK_FORMAT, normalized=normalized,
    )


def read_examples(path: pathlib.Path, format: str) -> Iterator[dict[str, Any]]:
    """Canonical rows of a validated dataset, streamed; ValueError naming the line at a bad one."""
    _check_format(format)
    for number, row, problem in jsonl_records(path):
        try:
            if problem is not None:
                raise _InvalidRow(problem)
            yield _normalize(format, row)[0]
        except _InvalidRow as exc:
            raise ValueError(f"line {number}: {exc}") from None
