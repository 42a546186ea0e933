import csv
import json
import textwrap
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selftaught.config import ConfigError, DataConfig, config_from_dict
from selftaught.tasks import make_task
from selftaught.tasks.base import Example, Task, TaskDataError
from selftaught.tasks.jsonl import JsonlTask, normalize_choice, normalize_text, validate_jsonl


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def task(**fields) -> JsonlTask:
    return JsonlTask(DataConfig(**fields))


NESTED = [
    {"id": "q1", "problem": {"text": "What is 1000+234?"}, "solution": {"final": "1,234"}, "difficulty": 2},
    {"id": "q2", "problem": {"text": "What is 2+3?"}, "solution": {"final": 5}},
]
FEW_SHOT = """\
Q: What is the capital of France?
A: France's capital city is Paris. So the answer is Paris.

Q: What color is the sky on a clear day?
A: Sunlight scatters off air, blue most.
So the answer is blue.
"""


# ------------------------------------------------------------------------------------ loading
def test_jsonl_with_nested_fields_and_number_normalizer(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", NESTED)
    t = task(
        train=path, question_field="problem.text", answer_field="solution.final", id_field="id", normalizer="number"
    )
    examples = t.load("train")
    assert [(e.id, e.question, e.answer) for e in examples] == [
        ("q1", "What is 1000+234?", "1234"),
        ("q2", "What is 2+3?", "5"),
    ]
    assert [t.bucket(e) for e in examples] == ["2", "all"]
    assert t.max_new_tokens(examples[0]) == 256
    assert isinstance(t, Task)


def test_csv_with_row_number_ids_and_bucket_column(tmp_path):
    path = write_csv(tmp_path / "test.csv", ["question", "answer", "bucket"], [["Capital of Peru?", "Lima", "geo"]])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("Largest ocean?,The Pacific Ocean,\n")
    t = task(test=path, max_new_tokens=64)
    examples = t.load("test")
    assert [e.id for e in examples] == ["test-0", "test-1"]
    assert [t.bucket(e) for e in examples] == ["geo", "all"]
    assert examples[1].answer == "The Pacific Ocean"  # shown as written in hints; compared normalized
    assert t.max_new_tokens(examples[0]) == 64


def test_json_list_and_max_examples(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps([{"question": f"q{i}", "answer": "(B)"} for i in range(5)]), encoding="utf-8")
    examples = task(train=str(path), normalizer="choice", max_examples=3).load("train")
    assert [(e.id, e.answer) for e in examples] == [("train-0", "b"), ("train-1", "b"), ("train-2", "b")]


def test_datasets_id_goes_through_load_dataset(monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(source, config, split):
        calls.append((source, config, split))
        return datasets.Dataset.from_dict({"q": ["2+2?", "3+3?"], "a": ["4", "6"]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    t = task(test="someone/arith", dataset_config="main", test_split="validation", question_field="q", answer_field="a")
    assert [e.answer for e in t.load("test")] == ["4", "6"]
    assert calls == [("someone/arith", "main", "validation")]


def test_dataset_saved_to_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"question": ["2+2?"], "answer": ["4"]}).save_to_disk(str(tmp_path / "ds"))
    assert [e.answer for e in task(train=str(tmp_path / "ds")).load("train")] == ["4"]


def test_unset_split_and_unknown_split(tmp_path):
    with pytest.raises(TaskDataError, match="task.data.train is not set"):
        task().load("train")
    with pytest.raises(ValueError, match="'dev'"):
        task(train="x.jsonl").load("dev")


# ------------------------------------------------------------------------------------- errors
def load_error(tmp_path, content: bytes, **fields) -> str:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(TaskDataError) as info:
        task(train=str(path), **fields).load("train")
    return str(info.value)


GOOD = b'{"question": "q", "problem": {"text": "q"}, "answer": "1", "id": "x"}\n'


def good_row(fields: dict) -> bytes:
    """A row every case's fields accept, so the bad row after it is the first error."""
    return GOOD.replace(b'"1"', b'"b"') if fields.get("normalizer") == "choice" else GOOD


@pytest.mark.parametrize(
    "line, fields, expected",
    [
        (b'{"question": "q"}\n', {}, "field 'answer' is missing"),
        (b'{"question": "q", "answer": "  "}\n', {}, "field 'answer' is empty"),
        (b'{"question": "q", "answer": ["a"]}\n', {}, "field 'answer' must be text, got list"),
        (
            b'{"problem": {"stem": "q"}, "answer": "a"}\n',
            {"question_field": "problem.text"},
            "'problem.text' is missing",
        ),
        (b'{"question": "q", "answer": "many"}\n', {"normalizer": "number"}, "field 'answer' must be one number"),
        (b'{"question": "q", "answer": "blue"}\n', {"normalizer": "choice"}, "single choice letter"),
        (b'{"question": "q", "answer": "a", "difficulty": [1]}\n', {}, "field 'difficulty' must be text"),
        (b'{"question": "q", "answer": "a"\n', {}, "not valid JSON"),
        (b'{"question": "q", "answer": "caf\xe9"}\n', {}, "not UTF-8"),
        (b'["q", "a"]\n', {}, "expected a JSON object"),
    ],
)
def test_bad_row_names_line_and_field(tmp_path, line, fields, expected):
    message = load_error(tmp_path, good_row(fields) + b"\n" + line, **fields)  # blank line 2: the bad row is line 3
    assert "bad.jsonl:3: " in message
    assert expected in message


def test_duplicate_ids_name_both_lines(tmp_path):
    message = load_error(tmp_path, GOOD + GOOD, id_field="id")
    assert "bad.jsonl:2: duplicate id 'x'" in message and "bad.jsonl:1" in message


def test_missing_id_field(tmp_path):
    assert "bad.jsonl:1: field 'uid' is missing" in load_error(tmp_path, GOOD, id_field="uid")


def test_validate_jsonl_collects_every_problem(tmp_path):
    rows = [{"question": "a", "answer": "1"}, {"question": "b"}, {"question": "c", "answer": "x"}]
    path = write_jsonl(tmp_path / "v.jsonl", rows)
    with open(path, "ab") as handle:
        handle.write(b"{oops\n")
    report = validate_jsonl(DataConfig(train=path, normalizer="number"), path)
    assert report["valid"] == 1 and report["invalid"] == 3
    assert [p.split(": ", 1)[0] for p in report["problems"]] == [f"{path}:{n}" for n in (2, 3, 4)]
    assert report["direct_answer_unreadable"] == 0


def test_validate_jsonl_flags_a_pattern_that_misses_the_direct_answer(tmp_path):
    path = write_jsonl(tmp_path / "v.jsonl", [{"question": "a", "answer": "1"}])
    report = validate_jsonl(DataConfig(train=path, answer_pattern=r"ANSWER=(\d+)"), path)
    assert report["valid"] == 1 and report["direct_answer_unreadable"] == 1


# ------------------------------------------------------------------------------------ prompts
def test_prompt_with_derived_hints(tmp_path):
    few = tmp_path / "few.txt"
    few.write_text(FEW_SHOT, encoding="utf-8")
    t = task(few_shot=str(few))
    ex = Example("x", "Capital of Peru?", "Lima")
    plain, hinted = t.prompt(ex), t.prompt(ex, hint=True)
    assert plain.startswith("Q: What is the capital of France?\nA: France's capital")
    assert plain.endswith("So the answer is blue.\n\nQ: Capital of Peru?\nA:")
    assert "Q: What is the capital of France? (Paris)\nA:" in hinted
    assert "Q: What color is the sky on a clear day? (blue)\nA:" in hinted
    assert hinted.endswith("\n\nQ: Capital of Peru? (Lima)\nA:")


def test_prompt_without_few_shot_and_with_hinted_file(tmp_path):
    ex = Example("x", "2+2?", "4")
    assert task().prompt(ex) == "Q: 2+2?\nA:"
    assert task().prompt(ex, hint=True) == "Q: 2+2? (4)\nA:"
    few, hinted = tmp_path / "few.txt", tmp_path / "hinted.txt"
    few.write_text("Q: 1+1?\nA: 2\n", encoding="utf-8")
    hinted.write_text("Q: 1+1? (answer: 2)\nA: 2\n", encoding="utf-8")
    t = task(few_shot=str(few), few_shot_hinted=str(hinted), normalizer="number")
    assert t.prompt(ex, hint=True) == "Q: 1+1? (answer: 2)\nA: 2\n\nQ: 2+2? (4)\nA:"


def test_few_shot_answer_without_extractable_answer_is_an_error(tmp_path):
    few = tmp_path / "few.txt"
    few.write_text("Q: 1+1?\nA: 2\n\nQ: What now?\nA: no digits here\n", encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"few.txt:4: .*'number' extractor"):
        task(few_shot=str(few), normalizer="number")


# ------------------------------------------------------------------------- answers and checks
@pytest.mark.parametrize(
    "normalizer, completion, expected",
    [
        ("number", "3 + 4 = 7. 7 * 2 = 14\n#### 14", "14"),
        ("number", "So the answer is $1,000.", "1000"),
        ("number", "We have 3 apples, then 5.", "5"),
        ("number", "no idea", None),
        ("choice", "Fish swim. So the answer is (c).", "c"),
        ("choice", "(a) is wrong, (d) fits.", None),  # two labels and no statement: no answer
        ("choice", "hmm", None),
        ("text", "Lima is in Peru. So the answer is: Lima. Next question", "Lima"),
        ("text", "The answer is x. Wait, the answer is New York! Sure.", "New York"),
        ("text", "Thinking.\nPacific Ocean\n\n", "Pacific Ocean"),
        ("text", "  \n ", None),
    ],
)
def test_extract_answer_by_normalizer(normalizer, completion, expected):
    assert task(normalizer=normalizer).extract_answer(completion) == expected


def test_answer_pattern_takes_the_last_match_and_normalizes():
    t = task(answer_pattern=r"ANSWER:\s*(\S+)", normalizer="number")
    assert t.extract_answer("ANSWER: 3\nno, ANSWER: 1,500") == "1500"
    assert t.extract_answer("nothing") is None
    assert t.extract_answer("ANSWER: 4 " + "x" * 10_000) is None  # only the last 4,000 characters are searched
    assert t.extract_answer("ANSWER: 4 " + "x" * 3_000) == "4"


def test_pathological_answer_pattern_is_bounded():
    t = task(answer_pattern=r"(a+)+$")
    start = time.perf_counter()
    assert t.extract_answer("a" * 50_000 + "b") is None  # no match (or timed out): no answer
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    "normalizer, predicted, gold, expected",
    [
        ("number", "18.00", "18", True),
        ("number", "1,234", "1234", True),
        ("number", "19", "18", False),
        ("text", "  new YORK  city.", "New York City", True),
        ("text", "Boston", "New York City", False),
        ("choice", "(B)", "b", True),
        ("choice", "c", "b", False),
        ("text", None, "x", False),
    ],
)
def test_check(normalizer, predicted, gold, expected):
    assert task(normalizer=normalizer).check(predicted, Example("x", "q", gold)) is expected


@pytest.mark.parametrize("normalizer, gold", [("number", "1234"), ("choice", "b"), ("text", "New York City")])
def test_direct_completion_round_trips(normalizer, gold):
    t = task(normalizer=normalizer)
    ex = Example("x", "q", gold)
    assert t.direct_completion(ex) == f" The answer is {gold}."
    assert t.check(t.extract_answer(t.direct_completion(ex)), ex)
    assert t.verify_rationale(ex, "anything") is None


def test_normalizers():
    assert normalize_text("\tThe  Pacific\nOcean!? ") == "the pacific ocean"
    assert [normalize_choice(x) for x in ("B", "(c)", "d)", "E.", "ab", "")] == ["b", "c", "d", "e", None, None]


@pytest.mark.parametrize("normalizer", ["text", "number", "choice"])
@pytest.mark.parametrize("pattern", ["", r"answer is\s*(.+?)[.\n]"])
@given(text=st.text(max_size=300))
@settings(max_examples=100, deadline=None)
def test_extract_answer_never_raises(normalizer, pattern, text):
    t = task(normalizer=normalizer, answer_pattern=pattern)
    for completion in (text, f"The answer is {text}", f"{text}\n#### {text}", f"({text[:1]}) {text}"):
        answer = t.extract_answer(completion)
        assert answer is None or isinstance(answer, str)
        t.check(answer, Example("x", "q", "1"))


# ----------------------------------------------------------------------------------- registry
def test_registry_builds_jsonl(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"question": "q", "answer": "a"}])
    config = config_from_dict({"task": {"name": "jsonl", "data": {"train": path}}})
    built = make_task(config)
    assert isinstance(built, JsonlTask) and built.load("train")[0].answer == "a"


def test_registry_loads_user_task_by_import_path(tmp_path, monkeypatch):
    package = tmp_path / "usertasks_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "mymod.py").write_text(
        textwrap.dedent(
            """\
            from selftaught.tasks.jsonl import JsonlTask


            class MyTask(JsonlTask):
                name = "mine"

                def __init__(self, config):
                    super().__init__(config.task.data)

                def bucket(self, example):
                    return "custom"
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write_jsonl(tmp_path / "t.jsonl", [{"question": "q", "answer": "7"}])
    config = config_from_dict({"task": {"name": "usertasks_pkg.mymod:MyTask", "data": {"train": path}}})
    built = make_task(config)
    assert built.name == "mine" and built.bucket(built.load("train")[0]) == "custom"


@pytest.mark.parametrize("name", ["no_such_package_xyz.mod:Task", "selftaught.tasks.jsonl:NoSuchClass"])
def test_registry_bad_import_path_is_a_config_error(name):
    with pytest.raises(ConfigError, match="cannot be imported"):
        make_task(config_from_dict({"task": {"name": name}}))


def test_jsonl_task_works_with_star_bookkeeping(tmp_path):
    from selftaught import star
    from selftaught.config import DataConfig
    from selftaught.tasks.jsonl import JsonlTask

    train = tmp_path / "train.jsonl"
    train.write_text('{"question": "2+2?", "answer": "4"}\n{"question": "3+3?", "answer": "6"}\n')
    few = tmp_path / "few.txt"
    few.write_text("Q: 1+1?\nA: one and one. The answer is 2.\n")
    task = JsonlTask(DataConfig(train=str(train), test=str(train), few_shot=str(few), normalizer="number"))
    examples = task.load("train")
    rows = [star.grade(task, examples[0], " 2 and 2. The answer is 4.", hinted=False)]
    rows.append(star.grade(task, examples[1], " The answer is 6.", hinted=True))
    records = star.training_records(task, examples, rows, "answer")
    assert [(r.id, r.source) for r in records] == [
        (examples[0].id, "generated"),
        (examples[1].id, "rationalized"),
    ]
    assert all(r.prompt.startswith("Q: ") and "(6)" not in r.prompt for r in records)  # no few-shot, no hint
    with_prefix = star.training_records(task, examples, rows, "answer", few_shot=True)
    assert all(r.prompt.startswith("Q: 1+1?") for r in with_prefix)
