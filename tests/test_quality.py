"""LLM quality checks: the judge and label consistency, against the loopback test server
through the pipeline's own request/journal plumbing, and every outcome on fixed answers."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from selfinstruct.config import build_config
from selfinstruct.filters import Drop, FilterSettings
from selfinstruct.llm import Completion, Request
from selfinstruct.pipeline import Generator
from selfinstruct.prompts import PromptSet, bundled_dir
from selfinstruct.quality import (
    Item,
    Judgement,
    check_label_consistency,
    judge,
    parse_judgement,
    same_label,
)
from selfinstruct.run import open_run, resume_config

SENTIMENT = "Classify the sentiment of the review as positive or negative."
ITEMS = [
    Item("task-000001-0", SENTIMENT, "I loved every minute of it.", "Positive"),
    Item("task-000001-1", SENTIMENT, "The food was cold and the staff rude.", "Negative"),
    Item("task-000002-0", "Name the capital of the given country.", "France", "Paris"),
]


@pytest.fixture
def generator(openai_server: Any, tmp_path: Path) -> Iterator[Generator]:
    config = build_config(
        {"seeds": "seeds/en_general.jsonl", "dataset": "q", "num_instructions": 5,
         "data_dir": str(tmp_path / "data"), "base_url": openai_server.base_url,
         "model": "test-model", "seed": 3},
        environ={},
    )
    with open_run(config, api_key="k", warn=False) as gen:
        yield gen


def recording(gen: Generator, answers: list[Completion]):
    """The generator's own `complete`, keeping what the endpoint answered."""

    def complete(requests: list[Request]) -> list[Completion]:
        out = gen.complete(requests)
        answers.extend(out)
        return out

    return complete


def test_judge_against_the_test_server(generator: Generator, openai_server: Any) -> None:
    answers: list[Completion] = []
    results = judge(ITEMS, prompts=generator.prompts, make_request=generator.dispatch.request,
                    complete=recording(generator, answers))
    assert len(results) == len(answers) == len(ITEMS)
    sent = openai_server.requests()
    assert all(r["body"]["messages"][0]["content"].startswith(
        "Rate the following instruction-tuning example.") for r in sent)
    for result, answer in zip(results, answers, strict=True):
        scores = parse_judgement(answer.text)
        if scores is None:  # today's server answers the rubric with a generic sentence
            assert (result.clarity, result.correctness) == (None, None)
            assert result.drop.reason == "unparseable_judgement"
            assert " ".join(answer.text.split())[:60] in result.drop.detail
        else:
            assert (result.clarity, result.correctness) == scores
            assert (result.drop is None) == (min(scores) >= FilterSettings().judge_min_score)
    assert generator.usage.stages["judge"].requests == len(ITEMS)


def test_judge_answers_are_paid_once_across_a_resume(openai_server: Any, tmp_path: Path) -> None:
    config = build_config(
        {"seeds": "seeds/en_general.jsonl", "dataset": "q", "num_instructions": 5,
         "data_dir": str(tmp_path / "data"), "base_url": openai_server.base_url,
         "model": "test-model", "seed": 3},
        environ={},
    )
    with open_run(config, api_key="k", warn=False) as first:
        results = judge(ITEMS, prompts=first.prompts, make_request=first.dispatch.request,
                        complete=first.complete)
        run_dir = first.journal.run_dir
    paid = openai_server.stats()["successes_total"]
    config, run_dir = resume_config(config.data_dir, config.dataset, run_dir, {})
    with open_run(config, api_key="k", run_dir=run_dir, warn=False) as resumed:
        again = judge(ITEMS, prompts=resumed.prompts, make_request=resumed.dispatch.request,
                      complete=resumed.complete)
        assert resumed.usage.stages["judge"].cached == len(ITEMS)
    assert again == results
    assert openai_server.stats()["successes_total"] == paid


def test_consistency_against_the_test_server(generator: Generator, openai_server: Any) -> None:
    answers: list[Completion] = []
    verdicts = check_label_consistency(ITEMS[:2], prompts=generator.prompts,
                                       make_request=generator.dispatch.request,
                                       complete=recording(generator, answers))
    prompts = [r["body"]["messages"][0]["content"] for r in openai_server.requests()]
    assert all(p.startswith("Classify the input of the following task.") for p in prompts)
    assert all("Class labels: Negative, Positive" in p for p in prompts)
    assert {r["body"]["temperature"] for r in openai_server.requests()} == {0.7}
    for item, verdict, answer in zip(ITEMS, verdicts, answers, strict=False):
        agreed = same_label(answer.text.strip().splitlines()[0], item.output)
        assert (verdict is None) == agreed
        if verdict is not None:
            assert verdict.reason == "label_disagreement"
            assert repr(item.output) in verdict.detail


class Scripted:
    """Fixed answers in place of an endpoint, recording the requests it was given."""

    def __init__(self, answers: list[Completion]) -> None:
        self.answers = answers
        self.requests: list[Request] = []

    def make_request(self, stage: str, prompt: str, params: dict, nonce: str) -> Request:
        return Request(stage, prompt, params, nonce)

    def complete(self, requests: list[Request]) -> list[Completion]:
        self.requests += requests
        return self.answers[: len(requests)]


def done(text: str) -> Completion:
    return Completion(text, "stop")


def test_judge_outcomes() -> None:
    script = Scripted([
        done("Clarity: 5\nCorrectness: 4"),
        done("**Clarity:** 4/5\n**Correctness:** 2/5"),
        done("The example looks fine to me."),
        Completion("", None, error="timeout: gave up after 6 attempts"),
    ])
    items = [*ITEMS, Item("task-000003-0", "Say hi.", "", "Hi!")]
    results = judge(items, prompts=PromptSet("en"), make_request=script.make_request,
                    complete=script.complete, settings=FilterSettings(judge_min_score=3))
    assert results[0] == Judgement(5, 4, None)
    assert results[1] == Judgement(4, 2, Drop("low_judge_score",
                                              "clarity 4, correctness 2 (needs 3)"))
    assert results[2] == Judgement(None, None, Drop(
        "unparseable_judgement", "answer was 'The example looks fine to me.'"))
    assert results[3].drop.reason == "judge_failed"
    assert [r.nonce for r in script.requests] == [f"judge-{i.key}" for i in items]
    assert {r.stage for r in script.requests} == {"judge"}
    assert script.requests[3].prompt.splitlines()[3] == "Input: <noinput>"
    assert script.requests[0].params["temperature"] == 0.0


@pytest.mark.parametrize(("text", "scores"), [
    ("Clarity: 4\nCorrectness: 5", (4, 5)),
    ("clarity : 1\ncorrectness: 1", (1, 1)),
    ("明確さ：４\n正確さ：５", (4, 5)),  # full-width digits and colon
    ("明確さ: 3\nCorrectness: 2", (3, 2)),
    ("Clarity: 7\nCorrectness: 5", None),  # out of the rubric's range
    ("Correctness: 5", None),
    ("", None),
    ("Clarity - 4\nCorrectness - 3", (4, 3)),
    ("**Clarity:** 4/5\n**Correctness:** 2/5", (4, 2)),
    ("clarity=4, correctness=5", (4, 5)),
    ('{"clarity": 4, "correctness": 5}', (4, 5)),
    ("Clarity (1-5): 4\nCorrectness (1-5): 5", (4, 5)),  # the range is not the score
    ("- Clarity: is the instruction clear?\nClarity: 3\nCorrectness: 4", (3, 4)),
    ("Clarity score: 4. Correctness is 5 out of 5.", (4, 5)),
    ("明確性: 3\n正確性: 2", (3, 2)),
    ("Clarity: 4.5\nCorrectness: 5", None),  # not a 1-5 integer
])
def test_parse_judgement(text, scores) -> None:
    assert parse_judgement(text) == scores


def test_judge_score_names_come_from_labels_json(tmp_path: Path) -> None:
    shutil.copytree(bundled_dir("prompts") / "ja", tmp_path / "ja")
    labels_file = tmp_path / "ja" / "labels.json"
    labels = json.loads(labels_file.read_text(encoding="utf-8"))
    labels_file.write_text(json.dumps({**labels, "clarity": ["わかりやすさ"],
                                       "correctness": ["正しさ"]}, ensure_ascii=False),
                           encoding="utf-8")
    custom = PromptSet("ja", tmp_path).labels
    assert parse_judgement("わかりやすさ：４\n正しさ：５", custom) == (4, 5)
    assert parse_judgement("Clarity: 4\nCorrectness: 2", custom) == (4, 2)  # English always
    assert parse_judgement("明確さ：４\n正確さ：５", custom) is None  # not this file's names


def test_consistency_outcomes_in_japanese() -> None:
    task = "次のレビューが肯定的か否定的か分類してください。"
    items = [Item("a-0", task, "最高の一日でした。", "肯定的"),
             Item("a-1", task, "二度と行きません。", "否定的"),
             Item("a-2", task, "まあまあでした。", "肯定的"),
             Item("a-3", task, "普通。", "否定的")]
    script = Scripted([done("クラスラベル: 肯定的です。"), done("肯定的"), done("「肯定的」"),
                       Completion("", None, error="http_500: boom")])
    verdicts = check_label_consistency(items, prompts=PromptSet("ja"),
                                       make_request=script.make_request,
                                       complete=script.complete)
    assert verdicts[0] is None and verdicts[2] is None
    assert verdicts[1] == Drop("label_disagreement", "generated '否定的', second sample '肯定的'")
    assert verdicts[3] is None  # no second opinion is no evidence against the first
    assert "クラスラベルの候補: 否定的、肯定的" in script.requests[0].prompt
    assert [r.nonce for r in script.requests] == [f"consistency-{i.key}" for i in items]


def test_a_single_label_task_is_asked_without_choices() -> None:
    script = Scripted([done("Paris")])
    assert check_label_consistency(ITEMS[2:], prompts=PromptSet("en"),
                                   make_request=script.make_request,
                                   complete=script.complete) == [None]
    assert "Class labels:" not in script.requests[0].prompt


@pytest.mark.parametrize(("answer", "label", "same"), [
    ("Positive.", "positive", True),
    ("Positive - the reviewer loved it", "Positive", True),
    ("Positively not", "Positive", False),
    ("Negative", "Positive", False),
    ("", "Positive", False),
])
def test_label_comparison(answer, label, same) -> None:
    assert same_label(answer, label) is same
