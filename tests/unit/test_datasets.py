"""Unit tests for forge.datasets: JSONL validation, filename rules, versioned names."""

from __future__ import annotations

import json
import pathlib

import pytest

from forge.datasets import (
    MAX_REPORTED_ERRORS,
    MIN_EXAMPLES,
    TASK_FIELDS,
    sanitize_filename,
    validate_jsonl,
    versioned_name,
)
from forge.errors import BadRequest

SAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "datasets" / "text_generation.jsonl"
GOOD = json.dumps({"input": "Reverse the word: cat", "output": "tac"})


def write(tmp_path: pathlib.Path, lines: list[str], name: str = "data.jsonl") -> pathlib.Path:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def good_lines(n: int = MIN_EXAMPLES) -> list[str]:
    return [GOOD] * n


def errors_by_line(report) -> dict[int, str]:
    return {e.line: e.error for e in report.errors}


# ------------------------------------------------------------------ validation


def test_valid_file(tmp_path):
    report = validate_jsonl(write(tmp_path, good_lines(12)))
    assert report.valid
    assert report.errors == []
    assert report.total_errors == 0
    assert report.num_examples == 12
    assert report.task == "text-generation"


def test_extra_fields_are_ignored(tmp_path):
    line = json.dumps({"input": "a", "output": "b", "source": 3})
    assert validate_jsonl(write(tmp_path, [line] * MIN_EXAMPLES)).valid


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
    ],
)
def test_each_error_kind_names_its_line(tmp_path, bad, expected):
    lines = good_lines(MIN_EXAMPLES)
    lines.insert(4, bad)  # becomes line 5
    report = validate_jsonl(write(tmp_path, lines), task="text-generation")
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
    assert report.task == "text-generation"


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


def test_utf8_text_is_fine(tmp_path):
    line = json.dumps({"input": "Traduis: café", "output": "コーヒー"}, ensure_ascii=False)
    assert validate_jsonl(write(tmp_path, [line] * MIN_EXAMPLES)).valid


# ------------------------------------------------------------------- detection


def test_detects_text_generation(tmp_path):
    assert validate_jsonl(write(tmp_path, good_lines())).task == "text-generation"


def test_detection_skips_leading_non_objects(tmp_path):
    report = validate_jsonl(write(tmp_path, ["[1]", "oops"] + good_lines()))
    assert report.task == "text-generation"
    assert report.num_examples == MIN_EXAMPLES
    assert sorted(errors_by_line(report)) == [1, 2]


def test_undetectable_rows_checked_against_text_generation(tmp_path):
    lines = [json.dumps({"prompt": "p", "completion": "c"})] * MIN_EXAMPLES
    report = validate_jsonl(write(tmp_path, lines))
    assert report.task == "text-generation"
    assert report.num_examples == 0
    assert report.total_errors == MIN_EXAMPLES + 1
    assert report.errors[1].error == "missing fields 'input', 'output'"
    assert [e.line for e in report.errors] == list(range(0, MIN_EXAMPLES + 1))


def test_unsupported_task_rejected(tmp_path):
    with pytest.raises(BadRequest, match="unsupported task"):
        validate_jsonl(write(tmp_path, good_lines()), task="no-such-task")


def test_task_fields_shape():
    assert TASK_FIELDS["text-generation"] == ("input", "output")


# -------------------------------------------------------------- sample dataset


def test_sample_dataset_is_valid():
    report = validate_jsonl(SAMPLE)
    rows = [line for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert report.valid, report.errors
    assert report.task == "text-generation"
    assert report.num_examples == len(rows) >= 60


# ------------------------------------------------------------------- filenames


@pytest.mark.parametrize(
    "name, reason",
    [
        ("../../x.jsonl", "path separators"),
        ("/etc/passwd", "path separators"),
        ("a/b.jsonl", "path separators"),
        ("a\\b.jsonl", "path separators"),
        ("a..b.jsonl", "'..'"),
        (".hidden.jsonl", "start with '.'"),
        ("x" * 300 + ".jsonl", "limit is 200"),
        ("data.txt", "end with '.jsonl'"),
        ("data.JSONL", "end with '.jsonl'"),
        ("", "required"),
        (None, "required"),
        ("my data.jsonl", "only letters"),
        ("d\u00e4ta.jsonl", "only letters"),
        ("bad\x00.jsonl", "control characters"),
        ("bad\n.jsonl", "control characters"),
    ],
)
def test_sanitize_filename_rejects(name, reason):
    with pytest.raises(BadRequest) as info:
        sanitize_filename(name)
    assert reason in info.value.detail
    assert info.value.status_code == 400


def test_sanitize_filename_names_allowed_characters():
    with pytest.raises(BadRequest) as info:
        sanitize_filename("my data.jsonl")
    assert "letters" in info.value.detail and "digits" in info.value.detail
    assert "' '" in info.value.detail


@pytest.mark.parametrize("name", ["dataset.jsonl", "my_data-v1.2.jsonl", "x" * 194 + ".jsonl"])
def test_sanitize_filename_accepts(name):
    assert sanitize_filename(name) == name


def test_versioned_name_free_name_unchanged():
    assert versioned_name("data.jsonl", lambda name: False) == "data.jsonl"


def test_versioned_name_counts_up():
    taken = {"data.jsonl", "data-2.jsonl", "data-3.jsonl"}
    assert versioned_name("data.jsonl", taken.__contains__) == "data-4.jsonl"
    assert versioned_name("other.jsonl", taken.__contains__) == "other.jsonl"


def test_versioned_name_first_duplicate():
    assert versioned_name("my_data-v1.2.jsonl", {"my_data-v1.2.jsonl"}.__contains__) == "my_data-v1.2-2.jsonl"
