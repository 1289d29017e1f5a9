"""Seed loading: both schemas, the shipped sets, and one clear error per malformed input."""

import json
from pathlib import Path

import pytest

from selfinstruct._errors import InputError
from selfinstruct.prompts import bundled_dir
from selfinstruct.seeds import load_seeds

SI_ROW = {"id": "t1", "name": "x", "instruction": "Say hi.",
          "instances": [{"input": "", "output": "Hi"}], "is_classification": False}


def write(tmp_path: Path, content: str | bytes, name: str = "seeds.jsonl") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def lines(*rows: object) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def test_shipped_english_set_meets_the_brief():
    seeds = load_seeds(bundled_dir("seeds") / "en_general.jsonl")
    assert len(seeds.tasks) >= 120
    assert sum(t.is_classification is True for t in seeds.tasks) >= 20
    assert all(t.instances for t in seeds.tasks)


def test_shipped_japanese_set_meets_the_brief():
    seeds = load_seeds(bundled_dir("seeds") / "ja_general.jsonl")
    assert len(seeds.tasks) >= 60
    assert any(t.is_classification for t in seeds.tasks)
    assert all(any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff"
                   for ch in t.instruction) for t in seeds.tasks)


def test_self_instruct_and_alpaca_rows_in_one_file(tmp_path):
    alpaca = {"instruction": "要約してください。", "input": "<noinput>", "output": "はい"}
    seeds = load_seeds(write(tmp_path, lines(SI_ROW, alpaca)))
    si, al = seeds.tasks
    assert si.id == "t1" and si.is_classification is False
    assert al.instruction == "要約してください。" and al.instances[0].input == ""
    assert al.is_classification is None and al.id == "line-2"
    assert len(seeds.sha256) == 64


def test_alpaca_json_array(tmp_path):
    rows = [{"instruction": "A b c d", "input": "", "output": "x"},
            {"instruction": "E f g h", "input": "y", "output": "z"}]
    seeds = load_seeds(write(tmp_path, json.dumps(rows, indent=2), "alpaca.json"))
    assert [t.instruction for t in seeds.tasks] == ["A b c d", "E f g h"]


def test_blank_lines_and_bom_are_tolerated(tmp_path):
    seeds = load_seeds(write(tmp_path, "\ufeff" + lines(SI_ROW) + "\n\n"))
    assert len(seeds.tasks) == 1


BAD_CASES = [
    ("bad_json", '{"instruction": "x", \n', r"seeds.jsonl:1: invalid JSON"),
    ("not_object", "[1, 2]\n", r"seeds.jsonl:1: expected a JSON array|seeds.jsonl:1: "),
    ("list_row", lines(SI_ROW) + "3\n", r"seeds.jsonl:2: expected a JSON object, got int"),
    ("missing_instruction", lines({"instances": []}), r":1: field 'instruction': missing"),
    ("empty_instruction", lines({**SI_ROW, "instruction": "  "}),
     r":1: field 'instruction': empty"),
    ("instruction_type", lines({**SI_ROW, "instruction": 5}),
     r":1: field 'instruction': expected a string, got int"),
    ("instances_type", lines({**SI_ROW, "instances": "x"}),
     r":1: field 'instances': expected a list"),
    ("instance_output_missing", lines({**SI_ROW, "instances": [{"input": "a"}]}),
     r":1: field 'instances\[0\].output': missing"),
    ("instance_input_type", lines({**SI_ROW, "instances": [{"input": 1, "output": "a"}]}),
     r":1: field 'instances\[0\].input': expected a string"),
    ("is_classification_type", lines({**SI_ROW, "is_classification": "yes"}),
     r":1: field 'is_classification': expected true or false"),
    ("duplicate_id", lines(SI_ROW, SI_ROW),
     r":2: field 'id': duplicate id 't1' \(first on line 1\)"),
    ("no_task_shape", lines({"instruction": "x"}), r":1: field 'instances': missing"),
    ("alpaca_empty_output", lines({"instruction": "x", "output": ""}),
     r":1: field 'output': empty"),
    ("empty_file", "", r"seeds.jsonl: empty seed file"),
    ("only_blank_lines", "\n \n", r"seeds.jsonl: empty seed file"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_seed_files_fail_with_one_located_line(tmp_path, name, content, message):
    with pytest.raises(InputError, match=message) as info:
        load_seeds(write(tmp_path, content))
    assert "\n" not in str(info.value)


def test_not_utf8_names_the_line(tmp_path):
    path = write(tmp_path, lines(SI_ROW).encode() + b'{"instruction": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"seeds.jsonl:2: not valid UTF-8"):
        load_seeds(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="seed file not found"):
        load_seeds(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="is a directory"):
        load_seeds(tmp_path)


def test_huge_line_is_refused(tmp_path):
    path = write(tmp_path, json.dumps({**SI_ROW, "name": "x" * 1_100_000}) + "\n")
    with pytest.raises(InputError, match=r":1: line longer than"):
        load_seeds(path)
