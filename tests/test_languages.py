"""Language profiles: no language code is tested outside selfinstruct/languages/, and a third
language is one profile (plus a prompts folder) that filters, novelty and report all follow."""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import pytest

from selfinstruct import languages
from selfinstruct.filters import filter_instances, first_drop, instruction_filters
from selfinstruct.language import detect_language
from selfinstruct.languages import LanguageProfile
from selfinstruct.parsing import ParsedInstance
from selfinstruct.prompts import PromptSet, bundled_dir
from selfinstruct.report.stats import collect
from selfinstruct.similarity import DEFAULT_THRESHOLDS, NoveltyIndex, default_threshold, rouge_l
from selfinstruct.tokenizers import tokenize_unicode

PACKAGE = Path(__file__).resolve().parents[1] / "selfinstruct"
PROFILES_DIR = PACKAGE / "languages"
# The shapes of a scattered language check, as issue 13 names them.
SCATTERED = re.compile(r"""(?:==|\bor)\s*["'](?:ja|en)["']|["'](?:ja|en)["']\s+if\b""")


def _outside_profiles() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if PROFILES_DIR not in p.parents]


def _code_checks(source: str) -> list[int]:
    """Lines holding a built-in language code as a string literal (AST): outside the
    profiles a code is only ever passed through, never spelled out."""
    codes = set(languages.codes())
    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and node.value in codes]


def test_no_language_code_is_tested_outside_the_profiles() -> None:
    text_hits = [f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
                 for path in _outside_profiles()
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if SCATTERED.search(line)]
    assert text_hits == []
    ast_hits = [f"{path.relative_to(PACKAGE.parent)}:{number}" for path in _outside_profiles()
                for number in _code_checks(path.read_text(encoding="utf-8"))]
    assert ast_hits == []


def test_the_scans_see_a_scattered_check() -> None:
    source = ('def unit(language):\n    return "chars" if language == "ja" else "w"\n'
              'NAMES = {"en": "English"}\nLANGUAGE = LANGUAGE or "en"\n')
    assert [line for line in source.splitlines() if SCATTERED.search(line)] == [
        '    return "chars" if language == "ja" else "w"', 'LANGUAGE = LANGUAGE or "en"']
    assert sorted(_code_checks(source)) == [2, 3, 4]


def test_registry_answers_for_the_built_in_languages() -> None:
    assert languages.codes()[:2] == ("en", "ja")
    assert languages.get("ja").length_unit == "chars"
    assert languages.get("en").ascii_start_only and not languages.get("ja").ascii_start_only
    assert detect_language(["日本の首都はどこですか。", "Name a fruit.", "四季を説明。"]) == "ja"
    assert detect_language(["日本の首都はどこですか。", "Name a fruit."]) == "en"
    with pytest.raises(ValueError, match="must be one of en, ja"):
        languages.get("fr")
    with pytest.raises(ValueError, match="already registered"):
        languages.register(languages.get("en"))


def _xx_mismatch(text: str) -> str | None:
    return None if "xx" in text.lower() else "has no xx marker (the dataset is Testish)"


# A made-up third language: character lengths, its own keywords, prefix, punctuation, script
# check, detection, tokenizer, threshold and verb analyser, all different from English's.
TESTISH = LanguageProfile(
    code="xx", name="Testish", prompts_folder="xx", length_unit="chars",
    unit_label="glyphs", blacklist=("zorp",), blacklist_whole_words=False,
    program_prefixes=("Compile a",), leading_punctuation="~", ascii_start_only=False,
    capitalise_first=False, instruction_mismatch=_xx_mismatch,
    output_mismatch=lambda text: None if "xx" in text else "output has no xx marker",
    other_language_asked=re.compile("in english", re.IGNORECASE),
    recognises=lambda text: text.startswith("xx"), tokenizer=tokenize_unicode,
    rouge_threshold=0.5, field_labels=("Zanswer",), refusal_patterns=(r"\bas a xx bot\b",),
    label_words={"input": ("Zin",), "output": ("Zout",), "class_label": ("Zclass",),
                 "instruction": ("Zinstr",)},
    example_words=("Zexample",), task_words=("Ztask",),
    leading_verb=lambda text: (text.split()[1], None),
)


@pytest.fixture
def testish(monkeypatch: pytest.MonkeyPatch) -> LanguageProfile:
    """TESTISH registered for one test (the registry is restored afterwards)."""
    monkeypatch.setattr(languages, "_PROFILES", dict(languages._PROFILES))
    languages.register(TESTISH)
    return TESTISH


def test_a_third_language_drives_the_instruction_filters(testish: LanguageProfile) -> None:
    chain = instruction_filters("xx")

    def reason(text: str) -> str | None:
        drop = first_drop(chain, text)
        return drop.reason if drop else None

    assert reason("xx lorem ipsum dolor sit amet") is None
    assert reason("lorem ipsum dolor sit amet") == "language_mismatch"
    assert reason("xx ab") == "too_short"  # 4 characters: measured in chars, not words
    assert reason("xx " + "abcdefgh" * 60) == "too_long"
    assert reason("xx draw a zorp today") == "blacklisted_keyword"
    assert reason("Compile a xx program for me") == "program_request"
    assert reason("~xx lorem ipsum dolor") == "starts_with_punctuation"
    assert reason("xx ünïcödé ßtart is fine here") is None  # no ASCII-start rule
    assert reason("xx image of a plot") is None  # English's blacklist does not apply
    assert reason("xx tell a story. Zanswer: once") == "template_leftover"
    assert reason("xx as a xx bot I will not say") == "refusal"
    assert reason("xx as an AI, say hello") == "refusal"  # every language's words count


def test_a_third_language_drives_the_instance_filters(testish: LanguageProfile) -> None:
    def drops(output: str, instruction: str = "xx write something long") -> list[str]:
        inst = ParsedInstance(input="", output=output)
        return [d.reason for _, d in filter_instances([inst], 5, instruction=instruction,
                                                      language="xx")[1]]

    assert drops("xx a long enough answer here") == []
    assert drops("a long enough answer without marker") == ["output_language_mismatch"]
    assert drops("a long enough answer without marker",
                 instruction="xx say it in English") == []
    # Without a language, the registry's detection picks Testish from the instruction.
    inst = ParsedInstance(input="", output="a long enough answer without marker")
    assert filter_instances([inst], 5, instruction="xx write")[1][0][1].reason == \
        "output_language_mismatch"


def test_a_third_language_drives_the_novelty_index(testish: LanguageProfile) -> None:
    assert default_threshold("xx") == DEFAULT_THRESHOLDS["xx"] == 0.5
    assert "xx" in DEFAULT_THRESHOLDS
    index = NoveltyIndex(language="xx")
    assert index.threshold == 0.5
    pooled, candidate = "ＡＩ helps people write", "AI helps cats"
    index.add(pooled)
    # The profile's tokenizer reads ＡＩ as "ai" (English's drops it: F = 1/3) and its threshold
    # 0.5 makes F = 4/7 a near-duplicate, which "auto" (same tokens, 0.7) keeps.
    assert rouge_l(pooled, candidate, "xx") == pytest.approx(4 / 7)
    assert rouge_l(pooled, candidate, "en") == pytest.approx(1 / 3)
    assert not index.is_novel(candidate)
    assert NoveltyIndex.from_texts([pooled], language="auto").is_novel(candidate)
    assert index.is_novel("completely different words")


def test_a_third_language_drives_the_report_stats_and_prompts(
    testish: LanguageProfile, tmp_path: Path
) -> None:
    folder = tmp_path / "version"
    folder.mkdir()
    rows = [{"task_id": f"t{i}", "instruction": text, "input": "", "output": "xx",
             "is_classification": False, "provenance": {"most_similar": []}}
            for i, text in enumerate(["xx sort these numbers", "xx name a fruit"])]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows),
                                        encoding="utf-8")
    (folder / "rejected.jsonl").write_text("", encoding="utf-8")
    stats = collect(folder, {"language": "xx"})
    assert (stats.language, stats.unit, stats.unit_label) == ("xx", "chars", "glyphs")
    assert stats.profile.name == "Testish"
    assert stats.verbs == [("sort", None), ("name", None)]
    assert len(stats.nearest) == 2
    prompts = tmp_path / "prompts"
    shutil.copytree(bundled_dir("prompts") / "en", prompts / "xx")
    assert PromptSet(testish.prompts_folder, prompts).render("answer", instruction="Hi")


def test_parsers_read_the_field_words_of_a_registered_language(testish: LanguageProfile) -> None:
    """A new language's field, example and task words reach the answer parsers (models drift
    between languages, so every registered language's words are read in every dataset)."""
    from selfinstruct.parsing import parse_instances
    from selfinstruct.prompts import PromptSet

    labels = PromptSet("en").labels
    answer = "Zexample 1\nZin: 2 + 2\nZout: 4\n\nZexample 2\nZin: 3 + 3\nZout: 6\nZtask: next"
    parsed = parse_instances(answer, labels, output_first=False, truncated=False)
    assert [(p.input, p.output, p.reason) for p in parsed] == [
        ("2 + 2", "4", None), ("3 + 3", "6", None)]
