"""Unit tests for forge.dataset_files: CSV, Parquet and JSON uploads read into rows, validated and stored as JSONL."""

from __future__ import annotations

import csv
import json
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forge import dataset_files
from forge.dataset_files import FILE_TYPES, stage_upload, upload_message, upload_names
from forge.datasets import MIN_EXAMPLES
from forge.errors import BadRequest
from forge.schemas import ValidationReport

PAIRS = [{"input": f"What is {i} plus {i}?", "output": str(2 * i)} for i in range(MIN_EXAMPLES + 2)]
CHAT = [{"messages": [{"role": "user", "content": f"Say {i}"}, {"role": "assistant", "content": f"{i}"}]}
        for i in range(MIN_EXAMPLES)]
TYPES = {t.label: t for t in FILE_TYPES}


def stage(tmp_path: Path, label: str, content: bytes, format: str | None = None):
    """Validate an upload of `label`'s type holding `content`: (the report, the stored JSONL's rows)."""
    file_type = TYPES[label]
    received = tmp_path / f"upload{file_type.suffix}"
    received.write_bytes(content)
    target = tmp_path / "stored.jsonl"
    report = stage_upload(received, file_type, target, format)
    stored = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    return report, stored


def errors(report) -> dict[int, str]:
    return {e.line: e.error for e in report.errors}


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def csv_bytes(header: str, lines: list[str]) -> bytes:
    return (header + "\n" + "".join(line + "\n" for line in lines)).encode()


def parquet_bytes(table: pa.Table, tmp_path: Path) -> bytes:
    path = tmp_path / "written.parquet"
    pq.write_table(table, path, row_group_size=4)  # several row groups: the reader streams across them
    return path.read_bytes()


# --------------------------------------------------------------------- names


@pytest.mark.parametrize("name, label, stored", [
    ("alpaca.jsonl", "JSONL", "alpaca.jsonl"), ("faq.csv", "CSV", "faq.jsonl"),
    ("chats.parquet", "Parquet", "chats.jsonl"), ("my_data-v1.2.json", "JSON", "my_data-v1.2.jsonl"),
])
def test_an_upload_is_stored_as_jsonl_under_its_stem(name, label, stored):
    uploaded, file_type, stored_name = upload_names(name)
    assert (uploaded, file_type.label, stored_name) == (name, label, stored)


def test_another_file_type_is_refused_naming_the_accepted_ones():
    with pytest.raises(BadRequest) as refused:
        upload_names("data.txt")
    assert refused.value.detail == "filename must end with '.jsonl' or '.csv' or '.parquet' or '.json'"
    with pytest.raises(BadRequest, match="path separators"):
        upload_names("../data.csv")
    # 200 characters is the limit for the name stored, which is longer than a CSV's own.
    assert upload_names("x" * 194 + ".jsonl")[2] == "x" * 194 + ".jsonl"
    with pytest.raises(BadRequest) as refused:
        upload_names("x" * 196 + ".csv")
    assert refused.value.detail == "stored as .jsonl, the filename is 202 characters long; the limit is 200"


def test_the_message_says_what_was_converted_renamed_and_normalised():
    alpaca = ValidationReport(valid=True, num_examples=12, format="pairs", normalized={"instruction": "input"})
    assert upload_message("faq.csv", TYPES["CSV"], "faq.jsonl", "faq-2.jsonl", alpaca) == (
        "converted faq.csv from CSV to JSONL (12 rows); a dataset named faq.jsonl exists; stored as faq-2.jsonl; "
        "pairs rows: fields normalised (instruction -> input)")
    plain = ValidationReport(valid=True, num_examples=12, format="pairs")
    assert upload_message("faq.csv", TYPES["CSV"], "faq.jsonl", "faq.jsonl", plain) == (
        "converted faq.csv from CSV to JSONL (12 rows); stored as faq.jsonl")
    assert upload_message("faq.jsonl", TYPES["JSONL"], "faq.jsonl", "faq.jsonl", plain) is None


# ----------------------------------------------------------------------- CSV


def test_csv_rows_are_stored_as_jsonl_with_every_cell_as_text(tmp_path):
    lines = [f'"{r["input"]}",{r["output"]}' for r in PAIRS]
    report, stored = stage(tmp_path, "CSV", csv_bytes("input,output", lines))
    assert (report.valid, report.format, report.num_examples) == (True, "pairs", len(PAIRS))
    # "4" stays the text "4": CSV has no types, and an output column of digits is still text to train on.
    assert stored == PAIRS


def test_csv_quoting_newlines_bom_blank_lines_and_a_pandas_index(tmp_path):
    content = ("\ufeff,instruction,response\r\n"  # Excel's BOM; pandas writes its index as an unnamed column
               '0,"Say ""hi"", politely","Hello,\r\nnice to meet you"\r\n'
               "\r\n"
               + "".join(f"{i},Count to {i},{i}\r\n" for i in range(1, MIN_EXAMPLES))).encode()
    report, stored = stage(tmp_path, "CSV", content)
    assert report.valid, report.errors
    assert report.normalized == {"instruction": "input", "response": "output"}
    assert stored[0] == {"instruction": 'Say "hi", politely', "response": "Hello,\r\nnice to meet you"}
    assert stored[1] == {"instruction": "Count to 1", "response": "1"}
    assert len(stored) == MIN_EXAMPLES


def test_csv_errors_name_the_line_in_the_uploaded_file(tmp_path):
    lines = [f"{r['input']},{r['output']}" for r in PAIRS]
    lines[0] = '"a question\nover two lines",4'  # lines 2-3 of the file
    lines[2] = "What is 9 plus 9?,18,extra"  # line 5
    lines[4] = "What is 1 plus 1?,"  # line 7
    report, _ = stage(tmp_path, "CSV", csv_bytes("input,output", lines))
    assert not report.valid
    assert errors(report) == {5: "expected 2 cells (the header's columns), got 3", 7: "field 'output' is empty"}


def test_csv_with_a_line_that_is_not_utf8_or_a_repeated_column(tmp_path):
    content = csv_bytes("input,output", [f"q{i},a{i}" for i in range(MIN_EXAMPLES)]) + b"caf\xe9,latin-1\n"
    report, _ = stage(tmp_path, "CSV", content)
    assert errors(report)[MIN_EXAMPLES + 2] == "line is not valid UTF-8 (the rest of the file was not read)"
    report, _ = stage(tmp_path, "CSV", csv_bytes("input,output,input", ["a,b,c"] * MIN_EXAMPLES))
    assert errors(report)[1] == "the header names column(s) 'input' twice"


def test_csv_text_rows_for_language_modelling(tmp_path):
    lines = [f'"Paragraph {i}. The fjord was calm, the boats were out."' for i in range(MIN_EXAMPLES)]
    report, stored = stage(tmp_path, "CSV", csv_bytes("text", lines))
    assert (report.valid, report.format) == (True, "text")
    assert stored[3] == {"text": "Paragraph 3. The fjord was calm, the boats were out."}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.fixed_dictionaries({"input": st.text(min_size=1), "output": st.text(min_size=1)}),
                     min_size=1, max_size=6))
def test_the_csv_reader_reads_what_the_csv_module_writes(tmp_path, rows):
    # Commas, quotes, any newline and any Unicode in the cells: every row comes back as written.
    path = tmp_path / "written.csv"
    write_csv(path, rows)
    assert [row for _, row, _ in dataset_files._csv_records(path)] == rows


# ------------------------------------------------------------------- Parquet


def test_parquet_rows_keep_their_types_so_chat_messages_survive(tmp_path):
    report, stored = stage(tmp_path, "Parquet", parquet_bytes(pa.Table.from_pylist(CHAT), tmp_path))
    assert (report.valid, report.format, report.num_examples) == (True, "chat", len(CHAT))
    assert stored == CHAT


def test_parquet_sharegpt_rows_and_columns_json_has_no_type_for(tmp_path):
    import datetime

    rows = [{"conversations": [{"from": "human", "value": f"Say {i}"}, {"from": "gpt", "value": f"{i}"}],
             "added": datetime.date(2026, 11, i + 1), "raw": b"\x00\x01"} for i in range(MIN_EXAMPLES)]
    report, stored = stage(tmp_path, "Parquet", parquet_bytes(pa.Table.from_pylist(rows), tmp_path))
    assert (report.valid, report.format) == (True, "chat")
    assert report.normalized["conversations"] == "messages"
    assert stored[0]["conversations"] == rows[0]["conversations"]
    assert stored[0]["added"] == "2026-11-01"


def test_parquet_errors_name_the_row_and_an_unreadable_file_says_so(tmp_path):
    rows = [dict(r) for r in PAIRS]
    rows[6]["output"] = None
    report, _ = stage(tmp_path, "Parquet", parquet_bytes(pa.Table.from_pylist(rows), tmp_path))
    assert errors(report) == {7: "field 'output' must be a string, got null"}
    report, _ = stage(tmp_path, "Parquet", b"input,output\nnot,parquet\n")
    assert [e.line for e in report.errors] == [0, 0]
    assert report.errors[0].error == f"dataset has 0 valid examples; at least {MIN_EXAMPLES} are required"
    assert report.errors[1].error.startswith("not a readable Parquet file: Parquet magic bytes not found")
    assert str(tmp_path) not in report.errors[1].error  # the server's paths stay on the server


def test_a_damaged_parquet_file_is_reported_not_crashed_on(tmp_path):
    path = tmp_path / "written.parquet"
    pq.write_table(pa.Table.from_pylist(PAIRS), path, row_group_size=4)
    damaged = bytearray(path.read_bytes())
    page = pq.ParquetFile(path).metadata.row_group(2).column(0).data_page_offset
    damaged[page : page + 16] = b"\xff" * 16  # the third row group's first page header
    report, _ = stage(tmp_path, "Parquet", bytes(damaged))
    assert not report.valid
    (lost,) = [e for e in report.errors if e.line > 0]
    assert lost.line <= 9 and lost.error.startswith("the file could not be read from this row on: ")
    assert lost.error.isprintable()


# ---------------------------------------------------------------------- JSON


def test_a_json_array_is_read_element_by_element_with_its_lines(tmp_path):
    content = json.dumps(PAIRS, indent=2).encode()
    report, stored = stage(tmp_path, "JSON", content)
    assert (report.valid, report.format, report.num_examples) == (True, "pairs", len(PAIRS))
    assert stored == PAIRS
    rows = [dict(r) for r in PAIRS]
    rows[3] = {"input": "What is 3 plus 3?"}
    content = json.dumps(rows, indent=2).encode()
    report, _ = stage(tmp_path, "JSON", content)
    # indent=2 puts element i's "{" on line 2 + 4 * i.
    assert errors(report) == {14: "missing field 'output'"}


def test_a_json_array_read_through_a_small_window_gives_the_same_rows(tmp_path, monkeypatch):
    # Rows, numbers and strings cut at every chunk boundary: 7 characters at a time.
    monkeypatch.setattr(dataset_files, "_JSON_CHUNK", 7)
    content = json.dumps([*PAIRS, {"input": "long " * 50, "output": "12345678901234567890"}]).encode()
    report, stored = stage(tmp_path, "JSON", content)
    assert report.valid and stored[:-1] == PAIRS and stored[-1]["output"] == "12345678901234567890"


@pytest.mark.parametrize("content, line, error", [
    ('[{"input": "a", "output": "b"},\n {"input": "a" "output": "b"}]', 2, "invalid JSON: Expecting ',' delimiter"),
    ('[{"input": "a", "output": "b"}\n {"input": "a"}]', 2,
     "invalid JSON: expected ',' or ']' after an element, got '{'"),
    ('[{"input": "a", "output": "b"},\n', 2, "invalid JSON: Expecting value"),
    ('[{"input": "a", "output": "b"}]\n[]', 2, "invalid JSON: the file goes on after the array's closing ']'"),
])
def test_a_broken_json_array_is_reported_at_its_line(tmp_path, content, line, error):
    report, _ = stage(tmp_path, "JSON", content.encode())
    assert not report.valid
    assert errors(report)[line].startswith(error)


def test_a_json_file_of_one_object_per_line_is_read_as_json_lines(tmp_path):
    content = "".join(json.dumps(r) + "\n" for r in PAIRS).encode()
    report, stored = stage(tmp_path, "JSON", content)
    assert (report.valid, report.num_examples, stored) == (True, len(PAIRS), PAIRS)


def test_json_nested_too_deeply_is_an_error_not_a_crash(tmp_path):
    report, _ = stage(tmp_path, "JSON", b"[" + b"[" * 100_000 + b"]" * 100_000 + b"]")
    assert errors(report)[1] == "invalid JSON: nested too deeply"


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(_JSON_VALUES, max_size=8), indent=st.sampled_from([None, 0, 2]),
       chunk=st.integers(min_value=1, max_value=64))
def test_the_streaming_json_array_reader_agrees_with_json_loads(tmp_path, monkeypatch, values, indent, chunk):
    # Whatever the values, the layout and where the chunks cut them: the elements json.loads sees.
    monkeypatch.setattr(dataset_files, "_JSON_CHUNK", chunk)
    path = tmp_path / "array.json"
    path.write_text(json.dumps(values, indent=indent, ensure_ascii=False), encoding="utf-8")
    records = list(dataset_files._JsonArray(path).elements())
    assert [value for _, value, _ in records] == values
    assert all(problem is None for _, _, problem in records)


def test_a_json_array_element_that_is_no_object(tmp_path):
    report, _ = stage(tmp_path, "JSON", json.dumps([*PAIRS, "a string"]).encode())
    assert errors(report) == {1: "expected a JSON object, got string"}


# ------------------------------------------------------------ memory stays flat


@pytest.mark.parametrize("label", ["CSV", "JSON"])
def test_a_large_upload_is_converted_in_flat_memory(tmp_path, label):
    rows = [{"input": f"Question number {i} about the weather in Bergen?", "output": "Rain, mostly. " * 8}
            for i in range(22_000)]
    if label == "CSV":
        content = csv_bytes("input,output", [f'"{r["input"]}","{r["output"]}"' for r in rows])
    else:
        content = json.dumps(rows).encode()
    assert len(content) > 3_500_000
    received = tmp_path / f"upload{TYPES[label].suffix}"
    received.write_bytes(content)
    del content, rows
    tracemalloc.start()
    try:
        report = stage_upload(received, TYPES[label], tmp_path / "stored.jsonl", None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.valid and report.num_examples == 22_000
    # The readers hold a window of the file (JSON: a few 256 KiB chunks), never all of it.
    assert peak < 2_500_000, f"peak {peak} bytes while converting {received.stat().st_size} bytes"
