"""Prompt templates: every template renders in both languages and hashes are stable."""

import shutil

import pytest

from selfinstruct._errors import InputError
from selfinstruct.prompts import LANGUAGES, TEMPLATE_NAMES, PromptSet, bundled_dir

EXAMPLES = [{"instruction": "Classify the mood.", "is_classification": True,
             "instances": [{"input": "Great day", "output": "Positive"}]}]


@pytest.mark.parametrize("language", LANGUAGES)
def test_all_templates_render(language):
    ps = PromptSet(language)
    assert set(ps.template_hashes) == set(TEMPLATE_NAMES)
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
