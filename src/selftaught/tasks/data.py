"""Reading question/answer rows from files or `datasets`, with file:line locations for every error.

Tasks parse rows with a function ``parse(location, row) -> Example`` that raises `TaskDataError`
naming the field. `load_examples` stops at the first bad row (a run must not start on bad data);
`validate_rows` collects every problem (for ``selftaught data validate``).
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from selftaught.tasks.base import Example, TaskDataError

if TYPE_CHECKING:
    from selftaught.config import DataConfig

FILE_SUFFIXES = (".jsonl", ".json", ".csv")
MAX_LINE_BYTES = 1 << 20  # a longer line is reported, not parsed
MAX_JSON_FILE_BYTES = 256 << 20  # a .json list is parsed whole; a bigger dataset belongs in .jsonl


@dataclass(frozen=True)
class Row:
    location: str  # "file:line" or "dataset[split][i]"
    data: dict | None
    error: str | None = None


def _bounded_lines(handle) -> Iterator[tuple[int, bytes, int]]:
    """(line number, line, its length in bytes); a line over the limit is yielded empty with its length,
    having been skipped in bounded reads (a 1 GB line costs 1 MB of memory, not 1 GB)."""
    lineno = 0
    while True:
        raw = handle.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        lineno += 1
        length = len(raw)
        if length > MAX_LINE_BYTES:
            while not raw.endswith(b"\n"):
                raw = handle.readline(MAX_LINE_BYTES)
                if not raw:
                    break
                length += len(raw)
            yield lineno, b"", length
            continue
        yield lineno, raw, length


def _jsonl_rows(path: Path) -> Iterator[Row]:
    with open(path, "rb") as handle:
        for lineno, raw, length in _bounded_lines(handle):
            where = f"{path}:{lineno}"
            if length > MAX_LINE_BYTES:
                yield Row(where, None, f"line is {length:,} bytes (limit {MAX_LINE_BYTES:,})")
                continue
            try:
                text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # Excel & co. write a BOM
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


def _csv_lines(path: Path, problems: list[Row]) -> Iterator[str]:
    """Decoded lines of a CSV file, read bounded; the first problem ends the stream and is recorded."""
    with open(path, "rb") as handle:
        for lineno, raw, length in _bounded_lines(handle):
            if length > MAX_LINE_BYTES:
                problems.append(Row(f"{path}:{lineno}", None, f"line is {length:,} bytes (limit {MAX_LINE_BYTES:,})"))
                return
            try:
                yield raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as err:
                problems.append(Row(f"{path}:{lineno}", None, f"not UTF-8 (byte {err.start} of the line)"))
                return


def _csv_rows(path: Path) -> Iterator[Row]:
    problems: list[Row] = []
    reader = csv.DictReader(_csv_lines(path, problems))
    try:
        for data in reader:
            if None in data:
                yield Row(f"{path}:{reader.line_num}", None, "more cells than header columns")
                continue
            yield Row(f"{path}:{reader.line_num}", dict(data))
    except csv.Error as err:
        yield Row(f"{path}:{reader.line_num}", None, f"CSV error: {err}")
    yield from problems


def _json_rows(path: Path) -> Iterator[Row]:
    size = path.stat().st_size
    if size > MAX_JSON_FILE_BYTES:
        yield Row(str(path), None, f"{size:,} bytes is too large for a .json list (limit 256 MiB); use .jsonl")
        return
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        yield Row(str(path), None, f"not a valid UTF-8 JSON file ({err})")
        return
    if not isinstance(data, list):
        yield Row(str(path), None, "expected a JSON list of objects")
        return
    for i, item in enumerate(data):
        ok = isinstance(item, dict)
        yield Row(f"{path}[{i}]", item if ok else None, None if ok else "expected a JSON object")


def _saved_dataset_rows(path: Path, split: str) -> Iterator[Row]:
    """A folder written by ``Dataset.save_to_disk`` (or a DatasetDict's, then ``split`` is taken)."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as err:
        raise TaskDataError(f"{path}: is a directory but not a saved dataset ({err})") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise TaskDataError(f"{path}: saved DatasetDict has no split {split!r} (has {list(loaded)})")
        loaded = loaded[split]
    for i, data in enumerate(loaded):
        yield Row(f"{path}[{split}][{i}]", dict(data))


def read_rows(source: str, split: str = "train", dataset_config: str = "") -> Iterator[Row]:
    """Rows of a local file (by suffix) or, for anything else, a `datasets` id."""
    path = Path(source)
    if path.is_dir():
        yield from _saved_dataset_rows(path, split)
        return
    if path.suffix in FILE_SUFFIXES or path.exists():
        if not path.is_file():
            raise TaskDataError(f"{source}: {_not_a_file(path)}")
        if path.suffix not in FILE_SUFFIXES:
            raise TaskDataError(f"{source}: unsupported file type {path.suffix!r} (use .jsonl, .json or .csv)")
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


def _not_a_file(path: Path) -> str:
    """Why ``path`` cannot be read as a dataset file (never opened: a FIFO would block, /dev/zero never ends)."""
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    kinds = {stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
    kind = next((name for test, name in kinds.items() if test(mode)), "a socket or special file")
    return f"is {kind}, not a regular file; copy the data into a file"


def split_source(data: DataConfig, split: str) -> tuple[str, str]:
    """(path or datasets id, datasets split name) of ``train`` or ``test``."""
    if split not in ("train", "test"):
        raise ValueError(f"splits are 'train' and 'test', not {split!r}")
    source = data.train if split == "train" else data.test
    if not source:
        raise TaskDataError(f"task.data.{split} is not set (a file or a datasets id)")
    return source, data.train_split if split == "train" else data.test_split


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


def _parsed(rows: Iterator[Row], parse: Parse) -> Iterator[Example | TaskDataError]:
    """Each row parsed, or the error naming it; a repeated id is an error."""
    seen: dict[str, str] = {}
    for row in rows:
        try:
            if row.error:
                raise TaskDataError(f"{row.location}: {row.error}")
            example = parse(row.location, row.data)
            if example.id in seen:
                raise TaskDataError(f"{row.location}: duplicate id {example.id!r} (first at {seen[example.id]})")
        except TaskDataError as err:
            yield err
            continue
        seen[example.id] = row.location
        yield example


def load_examples(rows: Iterator[Row], parse: Parse, max_examples: int = 0, source: str = "") -> list[Example]:
    """Parse every row, stopping at the first problem; ids must be unique. ``source`` names the data in errors."""
    examples = []
    for item in _parsed(rows, parse):
        if isinstance(item, TaskDataError):
            raise item
        examples.append(item)
        if max_examples and len(examples) >= max_examples:
            break
    if not examples:
        raise TaskDataError(f"{source + ': ' if source else ''}no examples found (empty file?)")
    return examples


def load_split(data: DataConfig, split: str, parse_row) -> list[Example]:
    """``split`` of the configured data, each row parsed by ``parse_row(location, row, split, index, id_field)``."""
    source, split_name = split_source(data, split)
    counter = itertools.count()

    def parse(location: str, row: dict) -> Example:
        return parse_row(location, row, split, next(counter), data.id_field)

    return load_examples(read_rows(source, split_name, data.dataset_config), parse, data.max_examples, source)


def describe_data(name: str, data: DataConfig) -> str:
    """A task read from data files, in one line for cards: its name and where train, test and few-shot come from."""
    few_shot = f", few-shot `{data.few_shot}`" if data.few_shot else ""
    return f"{name}: train `{data.train}`, test `{data.test}`{few_shot}"


def validate_rows(rows: Iterator[Row], parse: Parse) -> dict:
    """Counts of valid and invalid rows, with one 'location: reason' line per invalid row."""
    valid, problems = 0, []
    for item in _parsed(rows, parse):
        if isinstance(item, TaskDataError):
            problems.append(str(item))
        else:
            valid += 1
    return {"valid": valid, "invalid": len(problems), "problems": problems}
