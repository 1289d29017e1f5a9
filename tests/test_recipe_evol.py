"""`generate --recipe evol-instruct` end to end against the loopback test server.

One module-scoped matrix of CLI runs (clean and messy styles, chat and completions, en and ja)
feeds the checks on rows, lineage, drop reasons and accounting; separate runs cover
--generations, --from-version, personas, and resume after SIGKILL at deterministic points.
The test server's evol kinds (tests/servers/kinds/kind_evol.py) write the rewrites, verdicts
and answers, clean and realistically bad.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from selfinstruct.cli import main
from selfinstruct.dataset import validate
from selfinstruct.evol_text import answer_drop, copied_prompt, parse_equal, parse_evolved
from selfinstruct.recipes.evol_instruct import MUTATIONS
from tests.pause import kill_paused
from tests.servers.openai_server import start_server

ROOT = Path(__file__).resolve().parent.parent
SEEDS = {"en": ROOT / "seeds/en_general.jsonl", "ja": ROOT / "seeds/ja_general.jsonl"}
MUTATION_NAMES = {name for name, _ in MUTATIONS}
# The messy server's `content: null` answers are the same on every retry: retrying them only
# waits out the backoff.
NO_RETRIES = ("--max-retries", "0")

# (style, api, language, N)
MATRIX = [
    ("clean", "chat", "en", 10),
    ("messy", "chat", "en", 30),
    ("messy", "completions", "en", 15),
    ("messy", "chat", "ja", 20),
    ("clean", "completions", "ja", 8),
]
# Each reason the recipe adds, plus the shared ones its answers must reach.
MUST_FIRE = {
    "copied_prompt", "unrelated_to_parent", "no_information_gain", "unreadable_verdict",
    "answer_sorry", "answer_too_short", "too_similar", "refusal", "unparseable_answer",
}
# What no train row may keep of the mutation prompt or a chat wrapper.
ARTEFACTS = re.compile(r"#\s*(?:Given|Rewritten|Created) Prompt|#元のプロンプト#|"
                       r"書き換えたプロンプト|\*\*|```|\A(?:Sure|Here (?:is|are)|「|\")")


@dataclass
class Run:
    style: str
    api: str
    language: str
    n: int
    version: Path
    offered: list[dict[str, Any]]  # what the server answered (tests/servers accounting)

    def rows(self, name: str = "train.jsonl") -> list[dict[str, Any]]:
        return [json.loads(line) for line in
                (self.version / name).read_text(encoding="utf-8").splitlines()]

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.version / "manifest.json").read_text(encoding="utf-8"))


def generate(data_dir: Path, base_url: str, *args: str, dataset: str = "evol",
             language: str = "en", expect: int = 0) -> Path | None:
    """`selfinstruct generate --recipe evol-instruct` in-process; the version it wrote."""
    argv = ["generate", "--seeds", str(SEEDS[language]), "--dataset", dataset,
            "--data-dir", str(data_dir), "--recipe", "evol-instruct", "--base-url", base_url,
            "--model", "test-model", "--api-key", "k", "--seed", "5", "--no-progress",
            "--concurrency", "4", *NO_RETRIES, *args]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    assert code == expect, (argv, code)
    return Path(out.getvalue().strip().splitlines()[-1]) if code == 0 else None


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Run]:
    results = []
    for style, api, language, n in MATRIX:
        tmp = tmp_path_factory.mktemp(f"evol-{style}-{api}-{language}")
        with start_server(style=style) as server:
            version = generate(tmp, server.base_url, "--api", api, "--num-instructions", str(n),
                               language=language)
            offered = server.offered()
        assert version is not None
        results.append(Run(style, api, language, n, version, offered))
    return results


def test_each_run_reaches_n_usable_tasks_and_a_valid_version(runs: list[Run]) -> None:
    for run in runs:
        tasks = {row["task_id"] for row in run.rows()}
        assert len(tasks) >= run.n, (run.style, run.api, run.language, len(tasks))
        assert run.manifest["target"]["reached"]
        assert validate(run.version) == [], (run.style, run.api, run.language)
        assert set(run.manifest["usage"]) == {"evolve", "evol_check", "instances"}


def test_rows_carry_their_lineage(runs: list[Run]) -> None:
    for run in runs:
        seed_ids = {json.loads(line)["id"] for line in
                    SEEDS[run.language].read_text(encoding="utf-8").splitlines()}
        rows = run.rows()
        generation_of = {row["task_id"]: row["provenance"]["generation"] for row in rows}
        for row in rows:
            lineage = row["provenance"]
            assert lineage["mutation"] in MUTATION_NAMES
            assert 1 <= lineage["generation"] <= 3  # --generations defaults to 3
            parent = lineage["parent_id"]
            if parent.startswith("seed:"):
                assert parent.removeprefix("seed:") in seed_ids
                assert lineage["generation"] == 1
            else:
                assert re.fullmatch(r"task-\d{6}", parent) and parent < row["task_id"]
                if parent in generation_of:
                    assert lineage["generation"] == generation_of[parent] + 1
            assert row["input"] == ""  # an evolved instruction is answered on its own


def test_train_rows_keep_no_prompt_words_or_wrappers(runs: list[Run]) -> None:
    for run in runs:
        for row in run.rows():
            instruction = row["instruction"]
            assert ARTEFACTS.search(instruction) is None, (run.style, instruction)
            assert instruction == instruction.strip() and row["output"] == row["output"].strip()


def test_every_drop_reason_fires_with_a_detail(runs: list[Run]) -> None:
    fired: Counter[str] = Counter()
    for run in runs:
        rejected = run.rows("rejected.jsonl")
        for row in rejected:
            assert row["detail"].strip(), row
            fired[row["reason"]] += 1
        funnel = run.manifest["funnel"]
        drops = sum(sum(entry["drops"].values()) for stage, entry in funnel.items()
                    if stage != "answers")
        assert drops == len(rejected)  # every counted drop is a row, and no row is uncounted
        # Every answer is accounted for exactly once: read, unparseable or failed.
        sent = sum(stage["requests"] for stage in run.manifest["usage"].values())
        assert funnel["answers"]["in"] == sent, (run.style, run.api, run.language)
    assert set(fired) >= MUST_FIRE, MUST_FIRE - set(fired)


def test_a_completion_that_runs_on_keeps_its_first_rewrite(runs: list[Run]) -> None:
    """Raw completions stop at the prompt's answer label, so a second block is never read."""
    for run in runs:
        if run.api != "completions" or run.style != "messy":
            continue
        ran_on = {o["id"] for o in run.offered if "rewrite:runs_on" in o["shapes"]}
        kept = {row["provenance"]["request_id"] for row in run.rows()}
        assert ran_on & kept, run.language


def test_dropped_evolutions_get_no_answer_and_no_row(runs: list[Run]) -> None:
    for run in runs:
        rejected = run.rows("rejected.jsonl")
        no_gain = {r["instruction"] for r in rejected if r["reason"] == "no_information_gain"}
        answered = {r["instruction"] for r in rejected
                    if r["stage"] in ("instance_filter", "instances")}
        kept = {row["instruction"] for row in run.rows()}
        assert not no_gain & (answered | kept), run.style
        evol_check = run.manifest["funnel"].get("evol_check", {"drops": {}})
        answers = run.manifest["usage"]["instances"]["requests"]
        checked = run.manifest["usage"]["evol_check"]["requests"]
        assert answers == checked - evol_check["drops"].get("no_information_gain", 0)


def test_export_and_release_handle_the_version(runs: list[Run], tmp_path: Path) -> None:
    run = runs[1]
    out = tmp_path / "chat.jsonl"
    assert main(["export", str(run.version), "--format", "openai-chat",
                 "--output", str(out)]) == 0
    exported = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [e["messages"][0]["content"] for e in exported] == \
        [row["instruction"] for row in run.rows()]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["release", str(run.version), "--output-dir", str(tmp_path / "dist")]) == 0
    (archive,) = (tmp_path / "dist").glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        assert any(name.endswith("train.jsonl") for name in tar.getnames())


# -- depth, starting points, personas ----------------------------------------------------------


def _small_seed_file(path: Path, count: int) -> Path:
    lines = SEEDS["en"].read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[40:40 + count]) + "\n", encoding="utf-8")
    return path


def test_generations_bound_the_depth_and_parents_are_evolved_again_each_pass(
        tmp_path: Path) -> None:
    seeds = _small_seed_file(tmp_path / "seeds.jsonl", 6)
    with start_server() as server:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["generate", "--seeds", str(seeds), "--dataset", "deep", "--data-dir",
                         str(tmp_path / "data"), "--recipe", "evol-instruct", "--base-url",
                         server.base_url, "--model", "test-model", "--api-key", "k", "--seed",
                         "2", "--no-progress", "--generations", "2", "--num-instructions",
                         "16"])
    assert code == 0
    version = Path(out.getvalue().strip().splitlines()[-1])
    manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["target"]["reached"]
    rows = [json.loads(line) for line in (version / "train.jsonl").open(encoding="utf-8")]
    generations = Counter(row["provenance"]["generation"] for row in rows)
    assert set(generations) == {1, 2}, generations
    assert manifest["lineage"]["max_depth"] == 2
    # 16 tasks from 6 seeds: the cycle came back to the seeds for more evolutions, each seed
    # in turn (no seed evolved twice while another waited).
    children = Counter(row["provenance"]["parent_id"] for row in rows
                       if row["provenance"]["generation"] == 1)
    assert len(children) == 6 and max(children.values()) >= 2, children
    assert max(children.values()) - min(children.values()) <= 1, children
    by_task = {row["task_id"]: row for row in rows}
    for row in rows:
        if row["provenance"]["generation"] == 2:
            parent = row["provenance"]["parent_id"]
            assert parent.startswith("task-")
            if parent in by_task:
                assert by_task[parent]["provenance"]["generation"] == 1


def test_from_version_evolves_an_earlier_version(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with start_server() as server:
        first = generate(data, server.base_url, "--num-instructions", "6", dataset="base")
        assert first is not None
        earlier = {row["task_id"]: row["instruction"] for row in
                   (json.loads(line) for line in (first / "train.jsonl").open(encoding="utf-8"))}
        second = generate(data, server.base_url, "--num-instructions", "4", "--generations",
                          "1", "--from-version", str(first), dataset="evolved")
    assert second is not None
    rows = [json.loads(line) for line in (second / "train.jsonl").open(encoding="utf-8")]
    assert len({row["task_id"] for row in rows}) >= 4
    for row in rows:
        prefix, _, task_id = row["provenance"]["parent_id"].partition(":")
        assert prefix == "base/v0001" and task_id in earlier
        assert row["provenance"]["generation"] == 1
    assert validate(second) == []


def test_a_bad_from_version_is_one_clear_error(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    with start_server() as server:
        assert generate(data, server.base_url, "--num-instructions", "4", "--from-version",
                        str(tmp_path / "nowhere" / "v0001"), expect=2) is None
        err = capsys.readouterr().err
        assert "--from-version" in err and "Traceback" not in err
        first = generate(data, server.base_url, "--num-instructions", "4", dataset="base")
        assert first is not None
        with (first / "train.jsonl").open("a", encoding="utf-8") as handle:
            handle.write("\n")  # a changed file: the version no longer validates
        capsys.readouterr()
        assert generate(data, server.base_url, "--num-instructions", "4", "--from-version",
                        str(first), dataset="other", expect=2) is None
    err = capsys.readouterr().err
    assert "--from-version" in err and "not a valid version" in err
    assert len(err.strip().splitlines()) == 1
    assert not list(data.glob("other/.runs/*"))  # refused before a run folder was made


def test_personas_condition_the_rewrites(tmp_path: Path) -> None:
    with start_server() as server:
        version = generate(tmp_path, server.base_url, "--num-instructions", "5",
                           "--personas", "en")
    assert version is not None
    rows = [json.loads(line) for line in (version / "train.jsonl").open(encoding="utf-8")]
    assert all(row["provenance"]["persona_id"] for row in rows)
    assert len({row["provenance"]["persona_id"] for row in rows}) > 1


# -- resume after SIGKILL at deterministic points ----------------------------------------------


def _command(data_dir: Path, base_url: str) -> list[str]:
    return [sys.executable, "-m", "selfinstruct", "generate", "--seeds", str(SEEDS["en"]),
            "--dataset", "crash", "--data-dir", str(data_dir), "--recipe", "evol-instruct",
            "--base-url", base_url, "--model", "test-model", "--seed", "9", "--no-progress",
            "--num-instructions", "20", "--concurrency", "4", *NO_RETRIES]


def _env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "OPENAI_API_KEY": "k", **extra}


def _train(data_dir: Path) -> list[dict[str, Any]]:
    """The train rows; a request id keeps only its request fingerprint (the test server adds a
    serial number, which differs for a request the killed run had in flight and re-sent)."""
    (version,) = sorted((data_dir / "crash").glob("v0*"))
    rows = [json.loads(line) for line in (version / "train.jsonl").open(encoding="utf-8")]
    for row in rows:
        row["provenance"]["request_id"] = row["provenance"]["request_id"][:20]
    return rows


def _kill_at(point: str, data_dir: Path, base_url: str) -> None:
    """Start a run that stops at `point` (selfinstruct.interrupts.pause_point), SIGKILL it."""
    kill_paused(_command(data_dir, base_url), point,
                data_dir.parent / f"{data_dir.name}.fifo", _env())


@pytest.fixture(scope="module")
def reference_rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The rows of an uninterrupted run, which every killed and resumed run must give."""
    reference = tmp_path_factory.mktemp("evol-reference")
    with start_server(style="messy") as server:
        subprocess.run(_command(reference, server.base_url), cwd=ROOT, env=_env(), check=True,
                       capture_output=True)
    return _train(reference)


# Killed while generating, and between the Equal checks and the answers of the first phase:
# each resumes from a different mix of journaled answers and pending stages.
@pytest.mark.parametrize("point", ["after:bootstrap-round:3", "after:evol_check-batch:1"])
def test_resume_after_sigkill_gives_the_rows_of_an_uninterrupted_run(
        tmp_path: Path, point: str, reference_rows: list[dict[str, Any]]) -> None:
    killed = tmp_path / "killed"
    with start_server(style="messy") as server:
        _kill_at(point, killed, server.base_url)
        assert not list((killed / "crash").glob("v0*"))
        resumed = subprocess.run([sys.executable, "-m", "selfinstruct", "generate", "--dataset",
                                  "crash", "--data-dir", str(killed), "--resume",
                                  "--no-progress"], cwd=ROOT, env=_env(), capture_output=True,
                                 text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert _train(killed) == reference_rows


# -- reading answers -----------------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "expected"), [
    ("Sure! Here is the rewritten prompt:\n\n#Rewritten Prompt#: \"List three rivers.\"\n\n"
     "Let me know if you want changes.", "List three rivers."),
    ("**Rewritten Prompt:**\nExplain X step by step.", "Explain X step by step."),
    ("```\nSort these:\n| a | b |\n```", "Sort these:\n| a | b |"),
    ("#書き換えたプロンプト#：「東京の天気を説明して。」", "東京の天気を説明して。"),
    ("もちろんです！以下をご覧ください：\n\n箇条書きで説明して。", "箇条書きで説明して。"),
    ("Rewrite the sentence:\nThe cat sat.", "Rewrite the sentence:\nThe cat sat."),  # input kept
    ("   \n ", ""),
])
def test_parse_evolved_takes_wrappers_off(answer: str, expected: str) -> None:
    assert parse_evolved(answer) == expected


def test_copied_prompt_words_in_both_languages() -> None:
    assert copied_prompt("Improve the given prompt by adding a constraint.") is not None
    assert copied_prompt("#元のプロンプト#の条件を増やしてください。") is not None
    assert copied_prompt("与えられたプロンプトをもとに、詩を書いてください。") is not None
    assert copied_prompt("Give a prompt for a haiku about rain.") is None


@pytest.mark.parametrize(("verdict", "expected"), [
    ("Equal", True), ("**Not Equal**", False), ("Not equal - it adds a rule.", False),
    ("同じです。", True), ("異なります。", False), ("同じではありません", False),
    ("It depends.", None), ("", None),
])
def test_equal_verdicts(verdict: str, expected: bool | None) -> None:
    assert parse_equal(verdict) is expected


def test_answer_rules() -> None:
    short = answer_drop("Yes.", "words")
    assert short is not None and short.reason == "answer_too_short" and "1 words" in short.detail
    sorry = answer_drop("Sorry, I am not sure how to do that properly.", "words")
    assert sorry is not None and sorry.reason == "answer_sorry"
    assert answer_drop("Sorry " + "word " * 90, "words") is None  # a long answer may apologise
    assert answer_drop("すみません、うまくできるか分かりません。", "chars") is not None
    assert answer_drop("まず目的と、守るべき条件をはっきりさせます。", "chars") is None


def test_rewrites_and_answers_cut_at_max_tokens_are_dropped(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text("[stage_max_tokens]\nevolve = 28\nanswer = 45\n", encoding="utf-8")
    with start_server() as server:
        version = generate(tmp_path, server.base_url, "--num-instructions", "4", "--config",
                           str(config))
    assert version is not None
    rejected = [json.loads(line) for line in (version / "rejected.jsonl").open(encoding="utf-8")]
    cut = {(row["stage"], row["reason"]) for row in rejected if "max_tokens" in row["detail"]}
    assert cut == {("parse", "truncated"), ("instance_filter", "truncated")}, cut


def test_confidence_scores_the_answers(tmp_path: Path) -> None:
    """The answer stage passes its completion to the gate, so --confidence sees its log-probs."""
    with start_server() as server:
        version = generate(tmp_path, server.base_url, "--num-instructions", "3", "--confidence")
    assert version is not None
    rows = [json.loads(line) for line in (version / "train.jsonl").open(encoding="utf-8")]
    assert rows and all(0 < row["provenance"]["confidence"] <= 1 for row in rows)
