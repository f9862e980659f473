"""Unit tests for forge.datasets: formats, aliases, JSONL validation, filename rules, versioned names."""

from __future__ import annotations

import json
import pathlib

import pytest

from forge.datasets import (
    FORMATS,
    MAX_REPORTED_ERRORS,
    MIN_EXAMPLES,
    detect_format,
    normalize_row,
    read_examples,
    validate_jsonl,
)
from forge.errors import BadRequest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "datasets"
SAMPLE = EXAMPLES / "text_generation.jsonl"
GOOD = json.dumps({"input": "Reverse the word: cat", "output": "tac"})

CONTEXT = "Mira keeps three goats on a farm near Oslo."
CANONICAL = {
    "pairs": {"input": "Reverse the word: cat", "output": "tac"},
    "chat": {
        "messages": [
            {"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": "What is 2 plus 2?"},
            {"role": "assistant", "content": "4"},
        ]
    },
    "preference": {"prompt": "What is 2 plus 2?", "chosen": "It is 4.", "rejected": "I don't know."},
    "qa": {"context": CONTEXT, "question": "Where is the farm?", "answer": "near Oslo", "answer_start": 33},
    "text": {"text": "The river Glomma is the longest river in Norway."},
}


def write(tmp_path: pathlib.Path, lines: list[str], name: str = "data.jsonl") -> pathlib.Path:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def rows(tmp_path: pathlib.Path, row: dict, n: int = MIN_EXAMPLES) -> pathlib.Path:
    return write(tmp_path, [json.dumps(row)] * n)


def good_lines(n: int = MIN_EXAMPLES) -> list[str]:
    return [GOOD] * n


def errors_by_line(report) -> dict[int, str]:
    return {e.line: e.error for e in report.errors}


def error_at_line_5(tmp_path, format: str, bad: dict) -> dict[int, str]:
    """Validate MIN_EXAMPLES canonical rows of `format` with `bad` inserted as line 5."""
    lines = [json.dumps(CANONICAL[format])] * MIN_EXAMPLES
    lines.insert(4, json.dumps(bad))
    report = validate_jsonl(write(tmp_path, lines), format=format)
    assert report.num_examples == MIN_EXAMPLES
    assert report.total_errors == 1
    return errors_by_line(report)


# ------------------------------------------------------------------ validation


def test_valid_file(tmp_path):
    report = validate_jsonl(write(tmp_path, good_lines(12)))
    assert report.valid
    assert report.errors == []
    assert report.total_errors == 0
    assert report.num_examples == 12
    assert report.format == "pairs"
    assert report.normalized == {}


def test_extra_fields_are_ignored(tmp_path):
    line = json.dumps({"input": "a", "output": "b", "source": 3})
    assert validate_jsonl(write(tmp_path, [line] * MIN_EXAMPLES)).valid
    assert normalize_row("pairs", {"input": "a", "output": "b", "source": 3}) == {"input": "a", "output": "b"}


@pytest.mark.parametrize(
    "bad, expected",
    [
        ("{not json", "invalid JSON: Expecting property name enclosed in double quotes (column 2)"),
        ("nonsense", "invalid JSON: Expecting value (column 1)"),
        ("[1, 2]", "expected a JSON object, got array"),
        ('"just a string"', "expected a JSON object, got string"),
        ("42", "expected a JSON object, got int"),
        ("null", "expected a JSON object, got null"),
        ('{"input": "x"}', "missing field 'output'"),
        ('{"other": 1}', "missing fields 'input', 'output'"),
        ('{"input": 5, "output": "x"}', "field 'input' must be a string, got int"),
        ('{"input": "x", "output": null}', "field 'output' must be a string, got null"),
        ('{"input": "x", "output": true}', "field 'output' must be a string, got boolean"),
        ('{"input": "x", "output": ["y"]}', "field 'output' must be a string, got array"),
        ('{"input": "x", "output": ""}', "field 'output' is empty"),
        ('{"input": " \\t ", "output": "y"}', "field 'input' is empty"),
        ('{"prompt": "x"}', "missing field 'completion'"),
        ('{"document": "x", "summary": 1.5}', "field 'summary' must be a string, got float"),
        ('{"instruction": "x", "input": 3, "output": "y"}', "field 'input' must be a string, got int"),
    ],
)
def test_each_error_kind_names_its_line(tmp_path, bad, expected):
    lines = good_lines(MIN_EXAMPLES)
    lines.insert(4, bad)  # becomes line 5
    report = validate_jsonl(write(tmp_path, lines), format="pairs")
    assert not report.valid
    assert report.total_errors == 1
    assert errors_by_line(report) == {5: expected}
    assert report.num_examples == MIN_EXAMPLES


def test_several_bad_lines_each_reported(tmp_path):
    lines = good_lines(MIN_EXAMPLES) + ["[]", GOOD, '{"input": "x"}']
    report = validate_jsonl(write(tmp_path, lines))
    assert errors_by_line(report) == {
        11: "expected a JSON object, got array",
        13: "missing field 'output'",
    }
    assert report.num_examples == MIN_EXAMPLES + 1


def test_error_list_is_capped_but_all_counted(tmp_path):
    report = validate_jsonl(write(tmp_path, good_lines(MIN_EXAMPLES) + ["oops"] * 120))
    assert not report.valid
    assert report.total_errors == 120
    assert len(report.errors) == MAX_REPORTED_ERRORS == 50
    assert [e.line for e in report.errors] == list(range(11, 61))
    assert report.num_examples == MIN_EXAMPLES


def test_too_few_examples(tmp_path):
    report = validate_jsonl(write(tmp_path, good_lines(3)))
    assert not report.valid
    assert report.total_errors == 1
    assert report.num_examples == 3
    assert errors_by_line(report) == {0: "dataset has 3 valid examples; at least 10 are required"}


def test_exactly_min_examples_is_enough(tmp_path):
    assert validate_jsonl(write(tmp_path, good_lines(MIN_EXAMPLES))).valid


def test_min_examples_error_survives_the_cap(tmp_path):
    report = validate_jsonl(write(tmp_path, ["oops"] * 120))
    assert report.total_errors == 121
    assert len(report.errors) == MAX_REPORTED_ERRORS
    assert report.errors[0].line == 0
    assert report.errors[1].line == 1


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    report = validate_jsonl(path)
    assert not report.valid
    assert report.num_examples == 0
    assert report.total_errors == 1
    assert errors_by_line(report) == {0: "dataset has 0 valid examples; at least 10 are required"}
    assert report.format == "pairs"


def test_bom_is_tolerated(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(good_lines()).encode() + b"\n")
    report = validate_jsonl(path)
    assert report.valid
    assert report.num_examples == MIN_EXAMPLES


def test_blank_lines_are_skipped_and_numbering_kept(tmp_path):
    lines = good_lines(5) + ["", "   ", "\t"] + good_lines(5) + ["", "[]"]
    report = validate_jsonl(write(tmp_path, lines))
    assert report.num_examples == MIN_EXAMPLES
    assert report.total_errors == 1
    assert errors_by_line(report) == {15: "expected a JSON object, got array"}


def test_crlf_line_endings(tmp_path):
    path = tmp_path / "crlf.jsonl"
    path.write_bytes("\r\n".join(good_lines()).encode() + b"\r\n")
    assert validate_jsonl(path).valid


def test_no_trailing_newline(tmp_path):
    path = tmp_path / "nonl.jsonl"
    path.write_bytes("\n".join(good_lines() + ["[]"]).encode())
    assert errors_by_line(validate_jsonl(path)) == {11: "expected a JSON object, got array"}


def test_non_utf8_line_reported_with_its_number(tmp_path):
    path = tmp_path / "latin1.jsonl"
    good = GOOD.encode()
    bad = '{"input": "caf\u00e9", "output": "x"}'.encode("latin-1")
    path.write_bytes(b"\n".join([good, good, bad] + [good] * MIN_EXAMPLES) + b"\n")
    report = validate_jsonl(path)
    assert not report.valid
    assert errors_by_line(report) == {3: "line is not valid UTF-8"}
    assert report.num_examples == MIN_EXAMPLES + 2


def test_a_line_nested_too_deeply_is_an_error_not_a_crash(tmp_path):
    report = validate_jsonl(write(tmp_path, good_lines() + ["[" * 100_000 + "]" * 100_000]))
    assert errors_by_line(report) == {MIN_EXAMPLES + 1: "invalid JSON: nested too deeply"}


def test_utf8_text_is_fine(tmp_path):
    line = json.dumps({"input": "Traduis: café", "output": "コーヒー"}, ensure_ascii=False)
    assert validate_jsonl(write(tmp_path, [line] * MIN_EXAMPLES)).valid


def test_unsupported_format_rejected(tmp_path):
    for call in (
        lambda: validate_jsonl(write(tmp_path, good_lines()), format="text-generation"),
        lambda: normalize_row("no-such-format", {"input": "a", "output": "b"}),
        lambda: list(read_examples(write(tmp_path, good_lines()), "no-such-format")),
    ):
        with pytest.raises(BadRequest, match="unsupported format") as info:
            call()
        assert info.value.status_code == 400
        assert "pairs, chat, preference, qa" in info.value.detail


# ------------------------------------------------------------ canonical formats


@pytest.mark.parametrize("format", FORMATS)
def test_canonical_rows_are_valid_and_unchanged(tmp_path, format):
    row = CANONICAL[format]
    report = validate_jsonl(rows(tmp_path, row))
    assert report.valid, report.errors
    assert report.format == format
    assert report.normalized == {}
    assert report.num_examples == MIN_EXAMPLES
    assert normalize_row(format, row) == row
    assert detect_format(row) == (format, {})
    assert validate_jsonl(rows(tmp_path, row), format=format).valid


@pytest.mark.parametrize("format", FORMATS)
def test_non_object_row_rejected_by_normalize_row(format):
    with pytest.raises(ValueError, match="expected a JSON object, got array"):
        normalize_row(format, [1, 2])  # type: ignore[arg-type]


def test_formats_match_the_contract():
    # The contract's four, and "text" beyond it (README, "Beyond the contract").
    assert FORMATS == ("pairs", "chat", "preference", "qa", "text")


# ---------------------------------------------------------------------- aliases


@pytest.mark.parametrize(
    "row, expected, mapping",
    [
        (
            {"instruction": "Reverse: cat", "response": "tac"},
            {"input": "Reverse: cat", "output": "tac"},
            {"instruction": "input", "response": "output"},
        ),
        (
            {"prompt": "Reverse: cat", "completion": "tac"},
            {"input": "Reverse: cat", "output": "tac"},
            {"prompt": "input", "completion": "output"},
        ),
        (
            {"document": "The red train left at nine. It was full.", "summary": "red train leaves"},
            {"input": "The red train left at nine. It was full.", "output": "red train leaves"},
            {"document": "input", "summary": "output"},
        ),
    ],
)
def test_pairs_aliases_normalised(tmp_path, row, expected, mapping):
    assert normalize_row("pairs", row) == expected
    assert detect_format(row) == ("pairs", mapping)
    report = validate_jsonl(rows(tmp_path, row))
    assert report.valid, report.errors
    assert report.format == "pairs"
    assert report.normalized == mapping
    assert list(read_examples(rows(tmp_path, row), "pairs")) == [expected] * MIN_EXAMPLES


@pytest.mark.parametrize(
    "row, expected, mapping",
    [
        (
            {"instruction": "Translate to French", "input": "cat", "output": "chat"},
            {"input": "Translate to French\n\ncat", "output": "chat"},
            {"instruction, input": "input"},
        ),
        (
            {"instruction": "Name a colour", "input": "", "output": "blue"},
            {"input": "Name a colour", "output": "blue"},
            {"instruction, input": "input"},
        ),
        (
            {"instruction": "Name a colour", "input": "  ", "output": "blue"},
            {"input": "Name a colour", "output": "blue"},
            {"instruction, input": "input"},
        ),
        (
            {"instruction": "Name a colour", "output": "blue"},
            {"input": "Name a colour", "output": "blue"},
            {"instruction": "input"},
        ),
    ],
)
def test_alpaca_rows(tmp_path, row, expected, mapping):
    assert normalize_row("pairs", row) == expected
    assert detect_format(row) == ("pairs", mapping)
    report = validate_jsonl(rows(tmp_path, row))
    assert report.valid, report.errors
    assert (report.format, report.normalized) == ("pairs", mapping)


def test_alpaca_instruction_must_not_be_empty():
    with pytest.raises(ValueError, match="field 'instruction' is empty"):
        normalize_row("pairs", {"instruction": " ", "input": "cat", "output": "chat"})


def test_mixed_aliases_in_one_file_are_all_reported(tmp_path):
    lines = [json.dumps({"input": "a", "output": "b"})] * 4
    lines += [json.dumps({"prompt": "a", "completion": "b"})] * 3
    lines += [json.dumps({"instruction": "a", "response": "b"})] * 3
    report = validate_jsonl(write(tmp_path, lines))
    assert report.valid, report.errors
    assert report.normalized == {
        "prompt": "input",
        "completion": "output",
        "instruction": "input",
        "response": "output",
    }


def test_squad_answers_alias(tmp_path):
    row = {
        "context": CONTEXT,
        "question": "Where is the farm?",
        "answers": {"text": ["near Oslo", "Oslo"], "answer_start": [33, 38]},
    }
    assert normalize_row("qa", row) == CANONICAL["qa"]
    assert detect_format(row) == ("qa", {"answers": "answer, answer_start"})
    report = validate_jsonl(rows(tmp_path, row))
    assert report.valid, report.errors
    assert report.format == "qa"
    assert report.normalized == {"answers": "answer, answer_start"}


# ------------------------------------------------------------------ chat rules


def chat(*messages) -> dict:
    return {"messages": [{"role": role, "content": content} for role, content in messages]}


@pytest.mark.parametrize(
    "bad, expected",
    [
        ({"messages": []}, "field 'messages' is empty"),
        ({"messages": "hi"}, "field 'messages' must be an array, got string"),
        ({"dialogue": []}, "missing field 'messages'"),
        ({"messages": ["hi"]}, "field 'messages[0]' must be an object, got string"),
        ({"messages": [{"role": "user"}]}, "missing field 'messages[0].content'"),
        ({"messages": [{}]}, "missing fields 'messages[0].role', 'messages[0].content'"),
        (
            chat(("user", "hi"), ("bot", "hello")),
            "field 'messages[1].role' must be 'system', 'user' or 'assistant', got \"bot\"",
        ),
        (
            {"messages": [{"role": 1, "content": "hi"}]},
            "field 'messages[0].role' must be 'system', 'user' or 'assistant', got 1",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": 7}]},
            "field 'messages[1].content' must be a string, got int",
        ),
        (
            {"messages": [{"role": "user", "content": ["hi"]}, {"role": "assistant", "content": "x"}]},
            "field 'messages[0].content' must be a string, got array",
        ),
        (chat(("user", "hi"), ("assistant", "  ")), "field 'messages[1].content' is empty"),
        (chat(("user", "hi"), ("assistant", "hello"), ("user", "bye")), "last message must be from the assistant, got 'user'"),
        (chat(("system", "be brief"), ("assistant", "hello")), "messages have no user message"),
        (chat(("assistant", "hello")), "messages have no user message"),
    ],
)
def test_chat_rule_violations_name_their_line(tmp_path, bad, expected):
    assert error_at_line_5(tmp_path, "chat", bad) == {5: expected}
    with pytest.raises(ValueError) as info:
        normalize_row("chat", bad)
    assert str(info.value) == expected


def test_chat_keeps_only_role_and_content():
    row = {
        "id": 7,
        "messages": [
            {"role": "user", "content": "hi", "name": "ann"},
            {"role": "assistant", "content": "hello", "weight": 1},
        ],
    }
    assert normalize_row("chat", row) == chat(("user", "hi"), ("assistant", "hello"))


def test_chat_multi_turn_is_valid():
    row = chat(("system", "s"), ("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d"))
    assert normalize_row("chat", row) == row


# ------------------------------------------------------- ShareGPT and text rows

SHAREGPT = {"conversations": [
    {"from": "system", "value": "You answer briefly."},
    {"from": "human", "value": "What is 2 plus 2?"},
    {"from": "gpt", "value": "4"},
]}
SHAREGPT_ALIASES = {"conversations": "messages", "from human/gpt/system": "role user/assistant/system",
                    "value": "content"}


def test_sharegpt_rows_become_chat_and_the_upload_says_so(tmp_path):
    assert detect_format(SHAREGPT) == ("chat", SHAREGPT_ALIASES)
    assert normalize_row("chat", SHAREGPT) == CANONICAL["chat"]
    report = validate_jsonl(rows(tmp_path, SHAREGPT))
    assert report.valid, report.errors
    assert (report.format, report.normalized, report.num_examples) == ("chat", SHAREGPT_ALIASES, MIN_EXAMPLES)
    assert list(read_examples(rows(tmp_path, SHAREGPT), "chat")) == [CANONICAL["chat"]] * MIN_EXAMPLES


@pytest.mark.parametrize(
    "conversations, error",
    [
        ([{"from": "tool", "value": "x"}, {"from": "gpt", "value": "4"}],
         "field 'conversations[0].from' must be 'human', 'gpt' or 'system', got \"tool\""),
        ([{"from": "user", "value": "x"}, {"from": "gpt", "value": "4"}],
         "field 'conversations[0].from' must be 'human', 'gpt' or 'system', got \"user\""),
        ([{"from": "human", "value": "x"}, {"from": "gpt"}], "missing field 'conversations[1].value'"),
        ([{"from": "human", "value": "x"}, {"from": "gpt", "value": " "}], "field 'conversations[1].value' is empty"),
        ([{"from": "human", "value": "x"}, "gpt"], "field 'conversations[1]' must be an object, got string"),
        ([{"from": "gpt", "value": "4"}], "messages have no user message"),
        ([{"from": "gpt", "value": "4"}, {"from": "human", "value": "x"}],
         "last message must be from the assistant, got 'user'"),
        ("hello", "field 'conversations' must be an array, got string"),
    ],
)
def test_a_bad_sharegpt_row_is_reported_at_its_line(tmp_path, conversations, error):
    assert error_at_line_5(tmp_path, "chat", {"conversations": conversations}) == {5: error}


def test_text_rows_are_detected_and_validated(tmp_path):
    row = CANONICAL["text"]
    report = validate_jsonl(rows(tmp_path, row))
    assert (report.valid, report.format, report.normalized) == (True, "text", {})
    # A row naming a pairs shape is pairs, whatever else it holds.
    assert detect_format({"text": "x", "input": "a", "output": "b"})[0] == "pairs"
    # A text row may carry other fields (a source, an id): training reads `text` only.
    assert normalize_row("text", {"text": "Once upon a time.", "source": "tales"}) == {"text": "Once upon a time."}


@pytest.mark.parametrize(
    "row, error",
    [
        ({"text": ""}, "field 'text' is empty"),
        ({"text": ["a", "b"]}, "field 'text' must be a string, got array"),
        ({"content": "Once upon a time."}, "missing field 'text'"),
    ],
)
def test_a_bad_text_row_is_reported_at_its_line(tmp_path, row, error):
    assert error_at_line_5(tmp_path, "text", row) == {5: error}


# ----------------------------------------------------- OpenAI's DPO rows

OPENAI_DPO = {"input": {"messages": [{"role": "user", "content": "What is 2 plus 2?"}]},
              "preferred_output": [{"role": "assistant", "content": "4"}],
              "non_preferred_output": [{"role": "assistant", "content": "5"}]}
OPENAI_DPO_ALIASES = {"input.messages": "prompt", "preferred_output": "chosen", "non_preferred_output": "rejected"}


def test_openai_dpo_rows_become_preference_rows_and_the_upload_says_so(tmp_path):
    assert detect_format(OPENAI_DPO) == ("preference", OPENAI_DPO_ALIASES)
    canonical = {"prompt": "What is 2 plus 2?", "chosen": "4", "rejected": "5"}
    report = validate_jsonl(rows(tmp_path, OPENAI_DPO))
    assert (report.valid, report.format, report.normalized) == (True, "preference", OPENAI_DPO_ALIASES)
    assert list(read_examples(rows(tmp_path, OPENAI_DPO), "preference")) == [canonical] * MIN_EXAMPLES


@pytest.mark.parametrize(
    "change, error",
    [
        ({"input": {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}]}},
         "field 'input.messages' must hold one user message (conversations and system messages are not "
         "supported in preference rows)"),
        ({"input": "What is 2 plus 2?"}, "field 'input' must be an object, got string"),
        ({"input": {}}, "field 'input.messages' must be an array, got null"),
        ({"preferred_output": [{"role": "user", "content": "4"}]}, "field 'preferred_output' must hold one "
         "assistant message"),
        ({"non_preferred_output": "5"}, "field 'non_preferred_output' must be an array, got string"),
        ({"non_preferred_output": [{"role": "assistant", "content": "4"}]}, "chosen and rejected are identical"),
    ],
)
def test_a_bad_openai_dpo_row_is_reported_at_its_line(tmp_path, change, error):
    assert error_at_line_5(tmp_path, "preference", {**OPENAI_DPO, **change}) == {5: error}


# ------------------------------------------------------------ preference rules


@pytest.mark.parametrize(
    "bad, expected",
    [
        ({"prompt": "p", "chosen": "same", "rejected": "same"}, "chosen and rejected are identical"),
        ({"prompt": "p", "chosen": "same", "rejected": " same "}, "chosen and rejected are identical"),
        ({"prompt": "p", "chosen": "yes"}, "missing field 'rejected'"),
        ({"prompt": "p"}, "missing fields 'chosen', 'rejected'"),
        ({"prompt": "p", "chosen": "", "rejected": "no"}, "field 'chosen' is empty"),
        ({"prompt": 1, "chosen": "a", "rejected": "b"}, "field 'prompt' must be a string, got int"),
    ],
)
def test_preference_rule_violations(tmp_path, bad, expected):
    assert error_at_line_5(tmp_path, "preference", bad) == {5: expected}


# -------------------------------------------------------------------- qa rules


def qa(**fields) -> dict:
    return {"context": CONTEXT, "question": "Where is the farm?", **fields}


@pytest.mark.parametrize(
    "bad, expected",
    [
        (qa(answer="near Bergen"), "answer does not occur in context"),
        (qa(answer="near oslo"), "answer does not occur in context"),
        (qa(answer="near Oslo", answer_start=0), "answer_start 0 does not point at the answer in context"),
        (qa(answer="near Oslo", answer_start=34), "answer_start 34 does not point at the answer in context"),
        (qa(answer="near Oslo", answer_start=-11), "answer_start -11 does not point at the answer in context"),
        (qa(answer="near Oslo", answer_start="33"), "field 'answer_start' must be an integer, got string"),
        (qa(answer="near Oslo", answer_start=33.0), "field 'answer_start' must be an integer, got float"),
        (qa(answer="near Oslo", answer_start=True), "field 'answer_start' must be an integer, got boolean"),
        (qa(answer=""), "field 'answer' is empty"),
        (qa(), "missing field 'answer'"),
        ({"context": CONTEXT}, "missing fields 'question', 'answer'"),
        (qa(answers={"text": [], "answer_start": []}), "field 'answers.text' is empty"),
        (qa(answers={"text": ["near Oslo"], "answer_start": []}), "field 'answers.answer_start' is empty"),
        (
            qa(answers={"text": ["near Oslo", "Oslo"], "answer_start": [33]}),
            "'answers.text' has 2 items but 'answers.answer_start' 1",
        ),
        (qa(answers={"text": "near Oslo", "answer_start": 33}), "field 'answers.text' must be an array, got string"),
        (qa(answers={"text": ["near Oslo"]}), "missing field 'answers.answer_start'"),
        (qa(answers=["near Oslo"]), "field 'answers' must be an object, got array"),
        (qa(answers={"text": [""], "answer_start": [0]}), "field 'answers.text[0]' is empty"),
        (qa(answers={"text": ["Bergen"], "answer_start": [0]}), "answer does not occur in context"),
        (
            qa(answers={"text": ["near Oslo"], "answer_start": [3]}),
            "answer_start 3 does not point at the answer in context",
        ),
        (
            qa(answers={"text": ["near Oslo"], "answer_start": ["33"]}),
            "field 'answers.answer_start[0]' must be an integer, got string",
        ),
    ],
)
def test_qa_rule_violations(tmp_path, bad, expected):
    assert error_at_line_5(tmp_path, "qa", bad) == {5: expected}


def test_qa_answer_start_found_when_absent():
    assert normalize_row("qa", qa(answer="three goats"))["answer_start"] == CONTEXT.index("three goats") == 11


def test_qa_answer_start_may_point_at_a_later_occurrence():
    context = "Tom met Ann. Later Ann left."
    row = {"context": context, "question": "Who left?", "answer": "Ann", "answer_start": 19}
    assert normalize_row("qa", row)["answer_start"] == 19
    assert normalize_row("qa", {**row, "answer_start": None})["answer_start"] == 8


# ------------------------------------------------------------------- detection


def test_detects_pairs(tmp_path):
    assert validate_jsonl(write(tmp_path, good_lines())).format == "pairs"


@pytest.mark.parametrize(
    "row, expected",
    [
        ({"prompt": "p", "chosen": "a", "rejected": "b"}, ("preference", {})),
        ({"prompt": "p", "completion": "c"}, ("pairs", {"prompt": "input", "completion": "output"})),
        ({"prompt": "p", "chosen": "a", "rejected": "b", "completion": "c"}, ("preference", {})),
        ({"context": "c", "question": "q", "answer": "a", "messages": []}, ("qa", {})),
        ({"context": "c", "question": "q", "prompt": "p", "chosen": "a", "rejected": "b"}, ("qa", {})),
        ({"prompt": "p", "chosen": "a", "rejected": "b", "messages": []}, ("preference", {})),
        ({"messages": [], "input": "i", "output": "o"}, ("chat", {})),
        ({"context": "c", "input": "i", "output": "o"}, ("pairs", {})),
        ({"prompt": "p", "chosen": "a"}, ("pairs", {})),
        ({"other": 1}, ("pairs", {})),
        ({}, ("pairs", {})),
    ],
)
def test_detection_order(row, expected):
    assert detect_format(row) == expected


def test_detection_skips_leading_non_objects(tmp_path):
    report = validate_jsonl(write(tmp_path, ["[1]", "oops"] + good_lines()))
    assert report.format == "pairs"
    assert report.num_examples == MIN_EXAMPLES
    assert sorted(errors_by_line(report)) == [1, 2]


def test_detection_uses_the_first_object_row(tmp_path):
    lines = [json.dumps(CANONICAL["preference"])] + [json.dumps(CANONICAL["pairs"])] * MIN_EXAMPLES
    report = validate_jsonl(write(tmp_path, lines))
    assert report.format == "preference"
    assert report.num_examples == 1
    assert errors_by_line(report)[2] == "missing fields 'prompt', 'chosen', 'rejected'"


def test_undetectable_rows_checked_against_pairs(tmp_path):
    lines = [json.dumps({"question": "q", "reply": "r"})] * MIN_EXAMPLES
    report = validate_jsonl(write(tmp_path, lines))
    assert report.format == "pairs"
    assert report.num_examples == 0
    assert report.total_errors == MIN_EXAMPLES + 1
    assert report.errors[1].error == "missing fields 'input', 'output'"
    assert [e.line for e in report.errors] == list(range(0, MIN_EXAMPLES + 1))


def test_explicit_format_overrides_detection(tmp_path):
    path = rows(tmp_path, CANONICAL["preference"])
    assert validate_jsonl(path).format == "preference"
    report = validate_jsonl(path, format="pairs")
    assert report.format == "pairs"
    assert report.num_examples == 0
    assert report.total_errors == MIN_EXAMPLES + 1
    assert report.errors[1].error == "missing field 'completion'"

    path = rows(tmp_path, {"x": 1})
    report = validate_jsonl(path, format="chat")
    assert report.format == "chat"
    assert report.errors[1].error == "missing field 'messages'"


# ---------------------------------------------------------------- read_examples


def test_read_examples_yields_canonical_rows(tmp_path):
    lines = [
        json.dumps({"instruction": "Reverse: cat", "response": "tac"}),
        "",
        "   ",
        json.dumps({"input": "Reverse: dog", "output": "god", "extra": 1}),
        json.dumps({"instruction": "Say hi", "input": "Ann", "output": "Hi Ann"}),
    ]
    path = write(tmp_path, lines)
    examples = read_examples(path, "pairs")
    assert iter(examples) is examples  # a generator: streamed, not a list
    assert list(examples) == [
        {"input": "Reverse: cat", "output": "tac"},
        {"input": "Reverse: dog", "output": "god"},
        {"input": "Say hi\n\nAnn", "output": "Hi Ann"},
    ]


def test_read_examples_squad_and_bom(tmp_path):
    row = qa(answers={"text": ["near Oslo"], "answer_start": [33]})
    path = tmp_path / "squad.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(row).encode() + b"\n")
    assert list(read_examples(path, "qa")) == [CANONICAL["qa"]]


def test_read_examples_names_the_line_of_a_bad_row(tmp_path):
    path = write(tmp_path, [GOOD, "", '{"input": "x"}'])
    examples = read_examples(path, "pairs")
    assert next(examples) == CANONICAL["pairs"]
    with pytest.raises(ValueError, match="^line 3: missing field 'output'$"):
        next(examples)


# ------------------------------------------------------------- example datasets


@pytest.mark.parametrize(
    "name, format, normalized",
    [
        ("text_generation.jsonl", "pairs", {}),
        ("summarization.jsonl", "pairs", {"document": "input", "summary": "output"}),
        ("extractive_qa.jsonl", "qa", {}),
        ("preference.jsonl", "preference", {}),
        ("chat.jsonl", "chat", {}),
        ("sharegpt.jsonl", "chat", SHAREGPT_ALIASES),
        ("text.jsonl", "text", {}),
    ],
)
def test_example_datasets_are_valid(name, format, normalized):
    path = EXAMPLES / name
    report = validate_jsonl(path)
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert report.valid, report.errors
    assert report.format == format
    assert report.normalized == normalized
    assert report.num_examples == len(lines) >= 60
    assert len(list(read_examples(path, format))) == len(lines)


def test_sample_dataset_is_valid():
    report = validate_jsonl(SAMPLE)
    rows = [line for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert report.valid, report.errors
    assert report.format == "pairs"
    assert report.num_examples == len(rows) >= 60


def test_extractive_qa_example_has_long_contexts():
    examples = list(read_examples(EXAMPLES / "extractive_qa.jsonl", "qa"))
    long = [e for e in examples if len(e["context"].split()) >= 300]
    assert len(long) >= len(examples) // 6


def test_chat_example_has_system_messages_in_some_rows():
    examples = list(read_examples(EXAMPLES / "chat.jsonl", "chat"))
    with_system = sum(e["messages"][0]["role"] == "system" for e in examples)
    assert 0 < with_system < len(examples)
