"""Seed loading: both schemas, the shipped sets, and one clear error per malformed input."""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from selfinstruct._errors import InputError
from selfinstruct.prompts import bundled_dir
from selfinstruct.seeds import MAX_FILE_BYTES, bundled_seed_sets, load_seeds
from selfinstruct.similarity import NoveltyIndex

ROOT = Path(__file__).resolve().parent.parent

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


def ascii_lines(*rows: object) -> str:
    """JSONL with every non-ASCII character as a \\u escape (lone surrogates included)."""
    return "".join(json.dumps(r) + "\n" for r in rows)


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


# --- hardening (issue 12 items 5, 20, 22) ------------------------------------------------


@pytest.mark.parametrize(("row", "field"), [
    ({**SI_ROW, "instruction": "Say \ud800 hi."}, "instruction"),
    ({**SI_ROW, "instances": [{"input": "", "output": "x\udfff"}]}, r"instances\[0\].output"),
    ({**SI_ROW, "instances": [{"input": "\udc00", "output": "x"}]}, r"instances\[0\].input"),
    ({**SI_ROW, "name": "\ud83d"}, "name"),
    ({**SI_ROW, "id": "t\ud800"}, "id"),
    ({"instruction": "Reply.", "input": "\ud800", "output": "ok"}, "input"),
])
def test_lone_surrogate_is_refused_with_file_line_and_field(tmp_path, row, field):
    # json.dumps writes the surrogate as a "\udXXX" escape: valid JSON, not valid Unicode.
    path = write(tmp_path, ascii_lines(SI_ROW | {"id": "first"}, row))
    with pytest.raises(InputError, match=rf"seeds.jsonl:2: field '{field}': lone surrogate") \
            as info:
        load_seeds(path)
    str(info.value).encode("utf-8")  # the message itself must be printable


def test_raw_line_separators_inside_strings_are_accepted(tmp_path):
    text = "Line\u2028two\u2029three\u0085four"
    rows = [{**SI_ROW, "instruction": text}, {**SI_ROW, "id": "t2", "instruction": "B c d e"}]
    seeds = load_seeds(write(tmp_path, lines(*rows)))
    assert [t.instruction for t in seeds.tasks] == [text, "B c d e"]


def test_crlf_file_is_read_and_located(tmp_path):
    good = json.dumps(SI_ROW) + "\r\n"
    seeds = load_seeds(write(tmp_path, good.encode()))
    assert seeds.tasks[0].instruction == "Say hi."
    bad = good + "\r\n" + json.dumps({**SI_ROW, "id": "t2", "instruction": ""}) + "\r\n"
    with pytest.raises(InputError, match=r"seeds.jsonl:3: field 'instruction': empty"):
        load_seeds(write(tmp_path, bad.encode()))


def test_json_array_with_trailing_garbage_is_refused_with_its_line(tmp_path):
    rows = [{"instruction": "A b c d", "input": "", "output": "x"}]
    path = write(tmp_path, json.dumps(rows, indent=2) + "\n\ngarbage\n", "alpaca.json")
    with pytest.raises(InputError, match=r"alpaca.json:9: invalid JSON: unexpected text after "
                                         r"the JSON value \(column 1\)"):
        load_seeds(path)


def test_deeply_nested_json_is_one_line_not_a_recursion_crash(tmp_path):
    with pytest.raises(InputError, match=r"seeds.jsonl:1: invalid JSON: nested too deeply"):
        load_seeds(write(tmp_path, "[" * 200_000 + "]" * 200_000 + "\n"))


UNKNOWN_FIELDS = [
    ({**SI_ROW, "is_clasification": True},
     r":1: field 'is_clasification': unknown field \(did you mean 'is_classification'\?"),
    ({**SI_ROW, "colour": "red"}, r":1: field 'colour': unknown field \(known: id, name,"),
    ({**SI_ROW, "instances": [{"input": "", "ouput": "Hi"}]},
     r":1: field 'instances\[0\].ouput': unknown field \(did you mean 'output'\?"),
    ({"instruction": "Reply.", "output": "ok", "inputs": "x"},
     r":1: field 'inputs': unknown field \(did you mean 'input'\?"),
    ({"instruction": "Reply.", "instance": [{"output": "x"}]},
     r":1: field 'instance': unknown field \(did you mean 'instances'\?"),
    ({"instrucion": "Reply.", "instances": []},
     r":1: field 'instrucion': unknown field \(did you mean 'instruction'\?"),
    ({**SI_ROW, "\ud800": 1}, r":1: field '\\ud800': unknown field"),
]


@pytest.mark.parametrize(("row", "message"), UNKNOWN_FIELDS)
def test_unknown_fields_are_refused_with_a_hint(tmp_path, row, message):
    with pytest.raises(InputError, match=message) as info:
        load_seeds(write(tmp_path, ascii_lines(row)))
    str(info.value).encode("utf-8")


def test_known_extra_fields_of_alpaca_shaped_files_are_accepted(tmp_path):
    # The Hub's tatsu-lab/alpaca has a `text` column; a selfinstruct train row (exported with
    # --format jsonl, or train.jsonl itself) has task_id, is_classification and provenance.
    hub_row = {"instruction": "Name a fruit.", "input": "", "output": "Apple",
               "text": "Below is an instruction..."}
    train_row = {"id": "task-1-0", "task_id": "task-1", "instruction": "Is it odd?",
                 "input": "3", "output": "Yes", "is_classification": True,
                 "provenance": {"model": "m"}}
    hub, train = load_seeds(write(tmp_path, lines(hub_row, train_row))).tasks
    assert hub.is_classification is None and hub.instances[0].output == "Apple"
    assert train.is_classification is True and train.id == "task-1-0"


def test_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "seeds.jsonl"
    os.mkfifo(fifo)
    # Runs in a thread so that a regression (blocking in open) fails the test instead of
    # hanging the suite; the join bound is a watchdog, not a timing assumption.
    outcome: list[BaseException] = []
    worker = threading.Thread(target=lambda: _capture(outcome, fifo), daemon=True)
    worker.start()
    worker.join(timeout=30)
    if worker.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # release the reader, then fail
        pytest.fail("load_seeds blocked on a FIFO")
    assert len(outcome) == 1 and isinstance(outcome[0], InputError)
    assert str(outcome[0]) == f"{fifo}: is a FIFO; a seed file must be a regular file"


def _capture(outcome: list[BaseException], path: Path) -> None:
    try:
        load_seeds(path)
    except BaseException as exc:  # handed to the test thread, which asserts on it
        outcome.append(exc)


def test_device_is_refused_before_reading():
    with pytest.raises(InputError, match=r"^/dev/zero: is a character device; a seed file must "
                                         r"be a regular file$"):
        load_seeds("/dev/zero")


def test_file_over_the_size_cap_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk, no time
    with pytest.raises(InputError, match=r"huge.jsonl: larger than 100 MB"):
        load_seeds(path)


def test_bundled_sets_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert bundled_seed_sets() == ["en_general", "ja_general"]
    expected = bundled_dir("seeds") / "en_general.jsonl"
    for name in ("en_general", "en_general.jsonl", "seeds/en_general.jsonl"):
        seeds = load_seeds(name)
        assert seeds.path == expected and len(seeds.tasks) >= 120, name
    with pytest.raises(InputError, match=r"^fr_general: seed file not found \(bundled sets: "
                                         r"en_general, ja_general\)$"):
        load_seeds("fr_general")


def test_an_existing_path_wins_over_a_bundled_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, lines(SI_ROW), "en_general")
    seeds = load_seeds("en_general")
    assert seeds.path == Path("en_general") and [t.id for t in seeds.tasks] == ["t1"]


def fake_install(tmp_path: Path, bundled: bool = True) -> Path:
    """A copy of the package laid out as the wheel installs it (pyproject.toml's
    force-include puts seeds/ and prompts/ under selfinstruct/_bundled/), beside a decoy
    `seeds/` folder of some other distribution in the same site-packages."""
    site = tmp_path / "site-packages"
    shutil.copytree(ROOT / "selfinstruct", site / "selfinstruct",
                    ignore=shutil.ignore_patterns("__pycache__", "_bundled"))
    for name in ("seeds", "prompts") if bundled else ():
        shutil.copytree(ROOT / name, site / "selfinstruct" / "_bundled" / name)
    (site / "seeds").mkdir()
    (site / "seeds" / "decoy.jsonl").write_text(lines(SI_ROW), encoding="utf-8")
    return site


def run_installed(site: Path, code: str) -> list[str]:
    """Run `code` against the copy in `site`, from an unrelated folder; its stdout lines."""
    work = site.parent / "elsewhere"
    work.mkdir(exist_ok=True)
    out = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(site)}, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_installed_wheel_layout_finds_bundled_seeds_and_prompts(tmp_path):
    site = fake_install(tmp_path)
    names, en, ja, prompts = run_installed(site, (
        "from selfinstruct.seeds import bundled_seed_sets, load_seeds\n"
        "from selfinstruct.prompts import PromptSet\n"
        "print(bundled_seed_sets())\n"
        "for name in ('en_general', 'seeds/ja_general.jsonl'):\n"
        "    s = load_seeds(name); print(s.path, len(s.tasks))\n"
        "print(PromptSet('ja').dir)\n"))
    bundled = site / "selfinstruct" / "_bundled"
    assert names == "['en_general', 'ja_general']"
    assert en.startswith(f"{bundled / 'seeds' / 'en_general.jsonl'} ")
    assert ja.startswith(f"{bundled / 'seeds' / 'ja_general.jsonl'} ")
    assert prompts == str(bundled / "prompts" / "ja")


def test_installed_copy_never_takes_another_distributions_seeds_folder(tmp_path):
    site = fake_install(tmp_path, bundled=False)
    assert run_installed(site, "from selfinstruct.seeds import bundled_seed_sets\n"
                               "print(bundled_seed_sets())") == ["[]"]


def test_foreign_seed_file_is_valid_and_unlike_ours():
    """tests/fixtures/foreign_seeds_en.jsonl stands in for a Self-Instruct-schema seed file
    this project did not write (issue 11): the paper's row shape, other topics and phrasing,
    ~15 % classification, mostly tasks without input."""
    path = ROOT / "tests" / "fixtures" / "foreign_seeds_en.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert all(list(row) == ["id", "name", "instruction", "instances", "is_classification"]
               for row in rows)
    assert [row["id"] for row in rows] == [f"seed_task_{i}" for i in range(len(rows))]
    tasks = load_seeds(path).tasks
    assert len(tasks) >= 100
    assert 0.12 <= sum(t.is_classification is True for t in tasks) / len(tasks) <= 0.18
    assert sum(all(not i.input for i in t.instances) for t in tasks) >= len(tasks) / 2
    ours = NoveltyIndex.from_texts(t.instruction for t in load_seeds("en_general").tasks)
    closest = [ours.most_similar(t.instruction, k=1)[0][1] for t in tasks]
    assert max(closest) < 0.65 and sorted(closest)[len(closest) // 2] < 0.35


@pytest.mark.parametrize("kind", ["fifo", "device", "surrogate", "unknown_field"])
def test_generate_refuses_bad_seeds_in_one_line_and_writes_nothing(tmp_path, kind):
    path = tmp_path / "seeds.jsonl"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path = Path("/dev/zero")
    elif kind == "surrogate":
        write(tmp_path, ascii_lines({**SI_ROW, "instruction": "Say \ud800 hi."}))
    else:
        write(tmp_path, lines({**SI_ROW, "is_clasification": True}))
    # The FIFO and device lines may come from run.py's own stat check, which runs first.
    expected = {
        "fifo": re.escape(f"{path}: ") + r".*(FIFO.*regular file|regular file.*FIFO).*",
        "device": r"/dev/zero: .*(device.*regular file|regular file.*device).*",
        "surrogate": re.escape(f"{path}:1: field 'instruction': lone surrogate \\ud800 at "
                               f"character 4: not valid Unicode text"),
        "unknown_field": re.escape(f"{path}:1: field 'is_clasification': unknown field (did you "
                                   f"mean 'is_classification'? known: id, name, instruction, "
                                   f"instances, is_classification)"),
    }[kind]
    result = subprocess.run(
        [sys.executable, "-m", "selfinstruct", "generate", "--seeds", str(path), "--dataset", "x",
         "--num-instructions", "3", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
         "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert re.fullmatch(f"selfinstruct: error: {expected}\n", result.stderr), result.stderr
    assert not (tmp_path / "data").exists()


def test_nul_in_the_name_is_one_line():
    with pytest.raises(InputError, match=r"not a valid file name"):
        load_seeds("a\0b.jsonl")
