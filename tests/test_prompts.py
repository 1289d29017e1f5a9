"""Prompt templates: every template renders in both languages and hashes are stable."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from selfinstruct._errors import InputError
from selfinstruct.prompts import LANGUAGES, TEMPLATE_NAMES, PromptSet, bundled_dir
from selfinstruct.recipes.alpaca import Alpaca

EXAMPLES = [{"instruction": "Classify the mood.", "is_classification": True,
             "instances": [{"input": "Great day", "output": "Positive"}]}]


@pytest.mark.parametrize("language", LANGUAGES)
def test_all_templates_render(language):
    ps = PromptSet(language, extra_templates=Alpaca.templates)
    # The shared templates, and the alpaca recipe's own (declared on the recipe).
    assert set(ps.template_hashes) == {*TEMPLATE_NAMES, "alpaca"}
    boot = ps.render("bootstrap", instructions=[f"task {i}" for i in range(8)])
    assert boot.endswith("\n8. task 7\n9.")
    for name in ("classify", "instances_input_first", "instances_output_first"):
        text = ps.render(name, examples=EXAMPLES, instruction="NEW TASK")
        assert "Classify the mood." in text and "NEW TASK" in text
    alpaca = ps.render("alpaca", num_tasks=20,
                       tasks=[{"instruction": "I", "input": "", "output": "O"}])
    assert "<noinput>" in alpaca and alpaca.endswith("2. " + ps.labels.instruction + ":")


def test_missing_variable_is_an_error_not_silence():
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        PromptSet("en").render("bootstrap")


def test_custom_prompts_dir_and_broken_template(tmp_path):
    shutil.copytree(bundled_dir("prompts"), tmp_path / "p")
    (tmp_path / "p" / "en" / "classify.j2").write_text("{% for x in %}", encoding="utf-8")
    with pytest.raises(InputError, match=r"classify.j2:1: template syntax error"):
        PromptSet("en", tmp_path / "p")
    with pytest.raises(InputError, match="no prompt templates for language 'fr'"):
        PromptSet("fr")


# --- broken templates and labels fail on load, one line, before any request (issue 12 #22) ---


def copy_prompts(tmp_path: Path) -> Path:
    root = tmp_path / "p"
    shutil.copytree(bundled_dir("prompts"), root)
    return root


def edit(root: Path, name: str, old: str, new: str) -> None:
    path = root / "en" / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


BROKEN_TEMPLATES = [
    ("undefined_variable", "classify.j2", "{{ instruction }}", "{{ instrution }}",
     r"classify.j2:8: template uses undefined variable 'instrution' \(this template gets: "
     r"examples, instruction, labels\)"),
    ("undefined_in_untaken_branch", "bootstrap.j2", "{% endfor %}",
     "{% endfor %}{% if false %}{{ nope }}{% endif %}",
     r"bootstrap.j2:4: template uses undefined variable 'nope'"),
    ("undefined_label", "judge.j2", "labels.no_input", "labels.no_inptu",
     r"judge.j2:4: template uses undefined 'labels.no_inptu'"),
    ("undefined_item_attribute", "instances_input_first.j2", "{{ example.instruction }}",
     "{{ example.instrucion }}",
     r"instances_input_first.j2:4: template error: UndefinedError: .*'instrucion'"),
    ("runtime_error", "alpaca.j2", "{{ num_tasks }} diverse", "{{ num_tasks // 0 }} diverse",
     r"alpaca.j2:1: template error: ZeroDivisionError"),
    ("unknown_filter", "label.j2", '| join(", ")', "| joyn",
     r"label.j2:5: template error: TemplateRuntimeError: No filter named 'joyn'"),
]


@pytest.mark.parametrize(("case", "name", "old", "new", "message"), BROKEN_TEMPLATES,
                         ids=[c[0] for c in BROKEN_TEMPLATES])
def test_broken_template_fails_on_load_with_file_and_line(tmp_path, case, name, old, new,
                                                          message):
    root = copy_prompts(tmp_path)
    edit(root, name, old, new)
    with pytest.raises(InputError, match=message) as info:
        PromptSet("en", root, extra_templates=Alpaca.templates)  # alpaca.j2: the recipe's own
    assert "\n" not in str(info.value) and str(root / "en" / name) in str(info.value)


def test_missing_template_is_named(tmp_path):
    root = copy_prompts(tmp_path)
    (root / "en" / "judge.j2").unlink()
    with pytest.raises(InputError, match=r"en/judge.j2: prompt template missing$"):
        PromptSet("en", root)


BAD_LABELS = [
    ("invalid_json", '{\n  "task": "Task",\n  "example": \n}',
     r"labels.json:4: invalid JSON: Expecting value \(column 1\)"),
    ("not_an_object", '["Task"]', r"labels.json: expected a JSON object of labels, got list"),
    ("missing_key", {"drop": "example"}, r"labels.json: field 'example': missing"),
    ("unknown_key", {"add": {"exampel": "Example"}},
     r"labels.json: field 'exampel': unknown label \(did you mean 'example'\?\)"),
    ("wrong_type_str", {"add": {"input": ["Input"]}},
     r"labels.json: field 'input': expected a non-empty string, got \[\"Input\"\]"),
    ("empty_str", {"add": {"output": " "}},
     r"labels.json: field 'output': expected a non-empty string"),
    ("wrong_type_list", {"add": {"yes": "yes"}},
     r"labels.json: field 'yes': expected a non-empty list of non-empty strings, got \"yes\""),
    ("empty_list", {"add": {"no": []}}, r"labels.json: field 'no': expected a non-empty list"),
    ("list_with_number", {"add": {"no": ["no", 0]}},
     r"labels.json: field 'no': expected a non-empty list"),
]


@pytest.mark.parametrize(("case", "change", "message"), BAD_LABELS,
                         ids=[c[0] for c in BAD_LABELS])
def test_bad_labels_file_fails_on_load_with_one_line(tmp_path, case, change, message):
    root = copy_prompts(tmp_path)
    path = root / "en" / "labels.json"
    if isinstance(change, str):
        path.write_text(change, encoding="utf-8")
    else:
        data = json.loads(path.read_text(encoding="utf-8"))
        data.pop(change.get("drop", ""), None)
        data.update(change.get("add", {}))
        path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(InputError, match=message) as info:
        PromptSet("en", root)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_bad_labels_stop_generate_before_any_request(tmp_path, openai_server):
    root = copy_prompts(tmp_path)
    (root / "en" / "labels.json").write_text('{"task": "Task",', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "selfinstruct", "generate", "--seeds", "en_general",
         "--dataset", "x", "--num-instructions", "3", "--prompts-dir", str(root),
         "--base-url", openai_server.base_url, "--model", "m", "--data-dir",
         str(tmp_path / "data")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "OPENAI_API_KEY": "k"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"selfinstruct: error: {root / 'en' / 'labels.json'}:1: invalid JSON: Expecting "
        f"property name enclosed in double quotes (column 17)"]
    assert openai_server.stats()["requests_total"] == 0
    assert not (tmp_path / "data").exists()
