"""The README's settings table is the Settings model's: a new field without documentation fails here."""

from __future__ import annotations

from pathlib import Path

from forge.settings import Settings, markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_table() -> list[str]:
    lines = README.read_text().splitlines()
    start = lines.index("| variable | default | meaning |")
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_the_readme_table_is_the_models_table():
    # On a mismatch: paste `python -m forge.settings` into README.md's Settings section.
    assert _readme_table() == markdown_table().splitlines()


def test_every_variable_is_in_the_readme_with_its_description():
    table = "\n".join(_readme_table())
    for name, field in Settings.model_fields.items():
        assert field.description, f"Settings.{name} has no description"
        assert f"| `FORGE_{name.upper()}` |" in table
        assert f"| {field.description} |" in table


def test_defaults_shown_in_the_readme_are_the_models():
    rows = {row.split(" | ")[0].strip("| `"): row.split(" | ")[1] for row in _readme_table()[2:]}
    assert rows["FORGE_MAX_CONCURRENT_JOBS"] == str(Settings.model_fields["max_concurrent_jobs"].default)
    assert rows["FORGE_SPARE_RUNNER"] == "1" and Settings.model_fields["spare_runner"].default is True
    assert rows["FORGE_MANAGER_NAME"] == f"`{Settings.model_fields['manager_name'].default}`"
