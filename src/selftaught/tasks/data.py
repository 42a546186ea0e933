"""Reading question/answer rows from files or `datasets`, with file:line locations for every error.

Tasks parse rows with a function ``parse(location, row) -> Example`` that raises `TaskDataError`
naming the field. `load_examples` stops at the first bad row (a run must not start on bad data);
`validate_rows` collects every problem (for ``selftaught data validate``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from selftaught.tasks.base import Example, TaskDataError

FILE_SUFFIXES = (".jsonl", ".json", ".csv")
MAX_LINE_BYTES = 1 << 20  # a longer line is reported, not parsed


@dataclass(frozen=True)
class Row:
    location: str  # "file:line" or "dataset[split][i]"
    data: dict | None
    error: str | None = None


def _jsonl_rows(path: Path) -> Iterator[Row]:
    with open(path, "rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            where = f"{path}:{lineno}"
            if len(raw) > MAX_LINE_BYTES:
                yield Row(where, None, f"line is {len(raw):,} bytes (limit {MAX_LINE_BYTES:,})")
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield Row(where, None, f"not UTF-8 (byte {err.start})")
                continue
            if not text.strip():
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as err:
                yield Row(where, None, f"not valid JSON ({err.msg}, column {err.colno})")
                continue
            if not isinstance(data, dict):
                yield Row(where, None, f"expected a JSON object, got {type(data).__name__}")
                continue
            yield Row(where, data)


def _csv_rows(path: Path) -> Iterator[Row]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        yield Row(f"{path}:{line}", None, f"not UTF-8 (byte {err.start})")
        return
    reader = csv.DictReader(io.StringIO(text))
    try:
        for data in reader:
            if None in data:
                yield Row(f"{path}:{reader.line_num}", None, "more cells than header columns")
                continue
            yield Row(f"{path}:{reader.line_num}", dict(data))
    except csv.Error as err:
        yield Row(f"{path}:{reader.line_num}", None, f"CSV error: {err}")


def _json_rows(path: Path) -> Iterator[Row]:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        yield Row(str(path), None, f"not a valid UTF-8 JSON file ({err})")
        return
    if not isinstance(data, list):
        yield Row(str(path), None, "expected a JSON list of objects")
        return
    for i, item in enumerate(data):
        ok = isinstance(item, dict)
        yield Row(f"{path}[{i}]", item if ok else None, None if ok else "expected a JSON object")


def read_rows(source: str, split: str = "train", dataset_config: str = "") -> Iterator[Row]:
    """Rows of a local file (by suffix) or, for anything else, a `datasets` id."""
    path = Path(source)
    if path.suffix in FILE_SUFFIXES or path.exists():
        if not path.is_file():
            raise TaskDataError(f"{source}: no such file")
        reader = {".csv": _csv_rows, ".json": _json_rows}.get(path.suffix, _jsonl_rows)
        yield from reader(path)
        return
    try:
        import datasets

        dataset = datasets.load_dataset(source, dataset_config or None, split=split)
    except Exception as err:  # the hub, a missing config, no network: all one message
        raise TaskDataError(f"{source}: not a file, and datasets.load_dataset failed: {err}") from None
    for i, data in enumerate(dataset):
        yield Row(f"{source}[{split}][{i}]", dict(data))


def get_field(row: dict, dotted: str, location: str):
    """``row["a"]["b"]`` for ``"a.b"``; a clear error naming the field when it is missing."""
    node = row
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise TaskDataError(f"{location}: field '{dotted}' is missing")
        node = node[part]
    return node


def get_text(row: dict, dotted: str, location: str) -> str:
    value = get_field(row, dotted, location)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TaskDataError(f"{location}: field '{dotted}' must be text, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise TaskDataError(f"{location}: field '{dotted}' is empty")
    return text


Parse = Callable[[str, dict], Example]


def load_examples(rows: Iterator[Row], parse: Parse, max_examples: int = 0) -> list[Example]:
    """Parse every row, stopping at the first problem; ids must be unique."""
    examples, seen = [], {}
    for row in rows:
        if row.error:
            raise TaskDataError(f"{row.location}: {row.error}")
        example = parse(row.location, row.data)
        if example.id in seen:
            raise TaskDataError(f"{row.location}: duplicate id {example.id!r} (first at {seen[example.id]})")
        seen[example.id] = row.location
        examples.append(example)
        if max_examples and len(examples) >= max_examples:
            break
    if not examples:
        raise TaskDataError("no examples found (empty file?)")
    return examples


def validate_rows(rows: Iterator[Row], parse: Parse) -> dict:
    """Counts of valid and invalid rows, with one 'location: reason' line per invalid row."""
    valid, problems, seen = 0, [], {}
    for row in rows:
        try:
            if row.error:
                raise TaskDataError(f"{row.location}: {row.error}")
            example = parse(row.location, row.data)
            if example.id in seen:
                raise TaskDataError(f"{row.location}: duplicate id {example.id!r} (first at {seen[example.id]})")
            seen[example.id] = row.location
            valid += 1
        except TaskDataError as err:
            problems.append(str(err))
    return {"valid": valid, "invalid": len(problems), "problems": problems}
