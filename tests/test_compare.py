"""`selfinstruct compare` end to end: versions written by `selfinstruct generate` on the
loopback server, judged by the server's pairwise judge (tests/servers/kinds/kind_pairwise.py),
whose verdict for any prompt the tests can recompute.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from selfinstruct import cli
from selfinstruct.pairwise import TEMPLATES
from selfinstruct.prompts import PromptSet, bundled_dir
from tests.servers.kinds import kind_pairwise
from tests.servers.openai_server import RunningServer, start_server

ROOT = Path(__file__).resolve().parent.parent


def _generate(server: RunningServer, data: Path, name: str, *extra: str) -> Path:
    code = cli.main(["generate", "--seeds", str(ROOT / "seeds" / "en_general.jsonl"),
                     "--num-instructions", "12", "--dataset", name, "--data-dir", str(data),
                     "--base-url", server.base_url, "--model", "test-model", "--seed", "5",
                     "--no-progress", *extra])
    assert code == 0
    return data / name / "v0001"


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """Two versions with the same instructions and different answers: B's instance template
    differs after its first line, so the bootstrap prompts (and instructions) are the same and
    the instance prompts, hence the server's instances, are not."""
    root = tmp_path_factory.mktemp("compare")
    prompts = root / "prompts"
    shutil.copytree(bundled_dir("prompts"), prompts)
    template = prompts / "en" / "instances_input_first.j2"
    first, rest = template.read_text(encoding="utf-8").split("\n", 1)
    template.write_text(f"{first}\nAnswer carefully.\n{rest}", encoding="utf-8")
    with start_server() as server:
        a = _generate(server, root / "data", "a")
        b = _generate(server, root / "data", "b", "--prompts-dir", str(prompts))
    yield a, b


def _compare(*argv: str) -> int:
    """``selfinstruct compare ...`` through the real command line, in this process."""
    return cli.main(["compare", *argv])


def _rows(version: Path) -> dict[tuple[str, str], str]:
    rows: dict[tuple[str, str], str] = {}
    for line in (version / "train.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        rows.setdefault((row["instruction"], row["input"]), row["output"])
    return rows


def _expected_winner(instruction: str, input_: str, a: str, b: str) -> str:
    """What the server's judge decides for both orders of the pair (rendered here from the
    template, not by the code under test); the same text twice is a tie without asking."""
    if a.strip() == b.strip():
        return "tie"
    prompts = PromptSet("en", extra_templates=TEMPLATES)
    ab = prompts.render("pairwise", instruction=instruction, input=input_, answer_a=a,
                        answer_b=b)
    ba = prompts.render("pairwise", instruction=instruction, input=input_, answer_a=b,
                        answer_b=a)
    first = {"A": "a", "B": "b"}[kind_pairwise.choice(ab, "en")]
    second = {"A": "b", "B": "a"}[kind_pairwise.choice(ba, "en")]
    return first if first == second else "tie"


def test_compare_two_versions_end_to_end(versions: tuple[Path, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    a, b = versions
    rows_a, rows_b = _rows(a), _rows(b)
    shared = [key for key in rows_a if key in rows_b]
    assert len(shared) >= 4 and any(rows_a[k] != rows_b[k] for k in shared)
    out = tmp_path / "report"
    with start_server() as server:
        assert _compare(str(a), str(b), "--judge-model", "judge", "--base-url",
                        server.base_url, "--output", str(out)) == 0
        sent = server.stats()["requests_total"]
        printed = capsys.readouterr().out
        report = json.loads((out / "compare.json").read_text(encoding="utf-8"))
        pairs = [json.loads(line) for line in
                 (out / "pairs.jsonl").read_text(encoding="utf-8").splitlines()]
        assert sent == 2 * sum(rows_a[k].strip() != rows_b[k].strip() for k in shared)
        # Every verdict is the server judge's, from both orders.
        assert [(p["instruction"], p["input"]) for p in pairs] == shared
        for pair in pairs:
            key = (pair["instruction"], pair["input"])
            assert pair["winner"] == _expected_winner(*key, rows_a[key], rows_b[key])
            asked = rows_a[key].strip() != rows_b[key].strip()
            assert pair["detail"] and len(pair["request_ids"]) == (2 if asked else 0)
        winners = [p["winner"] for p in pairs]
        assert (report["wins"], report["ties"], report["losses"]) == (
            winners.count("a"), winners.count("tie"), winners.count("b"))
        assert report["judged"] == report["compared"] == len(shared)
        assert report["win_rate"] == pytest.approx(
            (winners.count("a") + winners.count("tie") / 2) / len(shared))
        low, high = report["win_rate_ci95"]
        assert low <= report["win_rate"] <= high
        assert f"A wins {report['wins']}, ties {report['ties']}, B wins {report['losses']}" \
            in printed
        assert "length-controlled win rate:" in printed and "95% CI" in printed
        assert printed.splitlines()[-1] == str(out)
        assert "## Method" in (out / "compare.md").read_text(encoding="utf-8")
        # The same comparison again pays nothing: every answer is in the journal.
        server.reset()
        capsys.readouterr()
        assert _compare(str(a), str(b), "--judge-model", "judge", "--base-url",
                        server.base_url, "--output", str(out)) == 0
        assert server.stats()["requests_total"] == 0
    again = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in again.items() if k not in ("created_at", "usage")} == \
        {k: v for k, v in report.items() if k not in ("created_at", "usage")}


def test_compare_a_version_with_a_model(versions: tuple[Path, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """model:NAME answers A's instructions; the server's answers to a bare instruction are
    its generic replies, which its judge finds worthless: A never loses, and only the
    position bias turns some of A's wins into ties."""
    a, _ = versions
    instructions = len(_rows(a))
    out = tmp_path / "vs-model"
    with start_server(style="clean") as server:
        assert _compare(str(a), "model:other-model", "--judge-model", "judge", "--base-url",
                        server.base_url, "--output", str(out), "--limit", "10") == 0
        assert server.stats()["requests_total"] == 10 + 2 * 10
        report = json.loads((out / "compare.json").read_text(encoding="utf-8"))
        assert report["compared"] == report["judged"] == min(10, instructions)
        assert report["losses"] == 0 and report["wins"] > report["ties"]
        # Both orders of every pair: a judge without position bias names "first" exactly
        # half the time; this one's bias shows, and every disagreement is one of the ties.
        positions = report["judge_positions"]
        assert positions["choices"] == 2 * report["judged"]
        assert positions["first_rate"] > 0.55
        assert positions["orders_agree"] == report["wins"] + report["losses"]
        assert positions["both_orders_read"] - positions["orders_agree"] == report["ties"]
        assert report["b"] == "model:other-model"
        usage = report["usage"]["stages"]
        assert usage["compare_answer"]["requests"] == 10 and usage["pairwise"]["requests"] == 20
        # A larger --limit reuses the first ten answers and judgements.
        server.reset()
        assert _compare(str(a), "model:other-model", "--judge-model", "judge", "--base-url",
                        server.base_url, "--output", str(out), "--limit", "12") == 0
        assert server.stats()["requests_total"] == 3 * (min(12, instructions) - 10)
    capsys.readouterr()


def test_identical_answers_are_ties_without_a_request(
        versions: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = versions
    out = tmp_path / "self"
    with start_server() as server:
        assert _compare(str(a), str(a), "--judge-model", "judge", "--base-url",
                        server.base_url, "--output", str(out)) == 0
        assert server.stats()["requests_total"] == 0
    report = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert report["ties"] == report["judged"] == len(_rows(a)) > 0
    assert report["win_rate"] == 0.5 and report["lc_win_rate"] == pytest.approx(0.5)
    capsys.readouterr()


def test_a_budget_stop_resumes_without_paying_twice(
        versions: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = versions
    out = tmp_path / "budget"
    argv = [str(a), "model:other-model", "--judge-model", "judge", "--output", str(out),
            "--limit", "6"]
    with start_server() as server:
        assert _compare(*argv, "--base-url", server.base_url, "--max-requests", "5") == 3
        first = server.stats()["requests_total"]
        assert first == 5 and not (out / "compare.json").exists()
        assert "--max-requests" in capsys.readouterr().err
        server.reset()
        assert _compare(*argv, "--base-url", server.base_url) == 0
        assert server.stats()["requests_total"] == 3 * 6 - first
    assert json.loads((out / "compare.json").read_text(encoding="utf-8"))["judged"] == 6


def test_compare_in_japanese(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with start_server() as server:
        code = cli.main(["generate", "--seeds", str(ROOT / "seeds" / "ja_general.jsonl"),
                         "--num-instructions", "4", "--dataset", "ja", "--data-dir",
                         str(tmp_path), "--base-url", server.base_url, "--model", "test-model",
                         "--seed", "3", "--no-progress"])
        assert code == 0
        version = tmp_path / "ja" / "v0001"
        out = tmp_path / "vs-model"
        assert _compare(str(version), "model:other-model", "--judge-model", "judge",
                        "--base-url", server.base_url, "--output", str(out)) == 0
        kinds_seen = {o["kind"] for o in server.offered()}
        langs_seen = {o["lang"] for o in server.offered() if o["kind"] == "pairwise"}
    assert "pairwise" in kinds_seen and langs_seen == {"ja"}
    report = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert report["judged"] == len(_rows(version)) and report["losses"] == 0
    pairs = (out / "pairs.jsonl").read_text(encoding="utf-8")
    assert "回答" in pairs  # the Japanese judge's reasons, kept unescaped
    capsys.readouterr()


def test_a_refused_key_is_one_line_without_the_password(
        versions: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Credentials in the URL become HTTP basic auth, which the server refuses (401): the
    command stops at once with one line, and the password is in no output and no file."""
    a, _ = versions
    out = tmp_path / "refused"
    with start_server() as server:
        url = server.base_url.replace("http://", "http://user:hunter2secret@")
        assert _compare(str(a), "model:other-model", "--judge-model", "judge", "--base-url",
                        url, "--output", str(out)) == 2
    printed = capsys.readouterr()
    assert printed.err.count("\n") == 1 and "401" in printed.err
    assert "hunter2secret" not in printed.err + printed.out
    assert not [p for p in out.iterdir() if p.is_file() and "hunter2secret" in
                p.read_text("utf-8")]
    assert not (out / "compare.json").exists()


def test_compare_records_unreadable_verdicts(versions: tuple[Path, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = versions
    out = tmp_path / "messy"
    with start_server(style="messy") as server:
        assert _compare(str(a), "model:other-model", "--judge-model", "judge", "--base-url",
                        server.base_url, "--output", str(out)) == 0
    report = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    pairs = [json.loads(line) for line in
             (out / "pairs.jsonl").read_text(encoding="utf-8").splitlines()]
    missing = [p for p in pairs if p["winner"] is None]
    assert report["unjudged"] == len(missing) > 0
    assert all(p["detail"] for p in missing)
    assert report["judged"] + report["unjudged"] == report["compared"] == len(pairs)
    assert f"{report['unjudged']} without a verdict" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["{a}", "{a}/../../nowhere/v0001"], "no such dataset folder"),
    (["{a}", "model:"], "names no model"),
    (["{a}", "model:x", "--base-url", ""], "--base-url is required"),
    (["{a}", "model:x", "--limit", "0"], "--limit: must be at least 1"),
    (["{a}", "model:x", "--output", "{a}/report"], "immutable"),
    (["{a}", "model:x", "--config", "{a}/../nowhere.toml"], "nowhere.toml"),
    (["{a}", "model:x", "--max-cost", "-1"], "--max-cost: must be a non-negative"),
    (["{a}", "model:x", "--timeout", "0"], "--timeout: must be a positive"),
])
def test_compare_refuses_bad_input_in_one_line(versions: tuple[Path, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               argv: list[str], message: str) -> None:
    a, _ = versions
    with start_server() as server:
        args = [arg.format(a=a) for arg in argv]
        if "--base-url" not in args:
            args += ["--base-url", server.base_url]
        before = sorted(p.relative_to(a.parent.parent) for p in a.parent.parent.rglob("*"))
        assert _compare(*args, "--judge-model", "judge") == 2
        assert server.stats()["requests_total"] == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("selfinstruct: error: ") and message in err
    assert "Traceback" not in err
    assert sorted(p.relative_to(a.parent.parent) for p in a.parent.parent.rglob("*")) == before


def test_compare_refuses_versions_without_shared_instructions(
        versions: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = versions
    other = tmp_path / "other" / "v0001"
    shutil.copytree(a, other)
    (other / "train.jsonl").write_text(json.dumps(
        {"instruction": "Something else entirely.", "input": "", "output": "x"}) + "\n",
        encoding="utf-8")
    with start_server() as server:
        assert _compare(str(a), str(other), "--judge-model", "judge", "--base-url",
                        server.base_url) == 2
        assert server.stats()["requests_total"] == 0
    assert "share no instruction" in capsys.readouterr().err


def test_compare_needs_a_judge_model(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["compare", "data/x/v0001", "model:m"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--judge-model" in err


def test_compare_prices_and_caps_the_cost(versions: tuple[Path, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Each stage at the price of the model that answered it: the judge's for the verdicts,
    model B's for its answers; --max-cost stops the run like generate's budgets."""
    a, _ = versions
    config = tmp_path / "prices.toml"
    config.write_text('[prices."judge"]\ninput = 2.0\noutput = 8.0\n'
                      '[prices."other-model"]\ninput = 0.5\noutput = 1.0\n', encoding="utf-8")
    out = tmp_path / "priced"
    argv = [str(a), "model:other-model", "--judge-model", "judge", "--output", str(out),
            "--limit", "4", "--config", str(config)]
    with start_server() as server:
        assert _compare(*argv, "--base-url", server.base_url) == 0
        usage = json.loads((out / "compare.json").read_text(encoding="utf-8"))["usage"]
        judge, answer = usage["stages"]["pairwise"], usage["stages"]["compare_answer"]
        assert usage["cost_usd"] == pytest.approx(
            (judge["prompt_tokens"] * 2 + judge["completion_tokens"] * 8
             + answer["prompt_tokens"] * 0.5 + answer["completion_tokens"] * 1) / 1e6)
        assert f"cost ${usage['cost_usd']:.4f}" in capsys.readouterr().out
        server.reset()
        capped = tmp_path / "capped"
        # Model B's four answers cost more than the cap: no judge request is sent.
        assert _compare(*argv[:5], str(capped), *argv[6:], "--base-url", server.base_url,
                        "--max-cost", "0.00001") == 3
        assert server.stats()["requests_total"] == 4
    assert "budget reached (--max-cost 1e-05" in capsys.readouterr().err
    assert not (capped / "compare.json").exists()
