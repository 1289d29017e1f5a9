"""`--recipe magpie`: instructions sampled from the model's chat template, then answered.

End to end through the CLI against the loopback test server (its ChatML template served at
GET /props, clean and messy answers, en and ja), the refusals, `--chat-template` files,
resume after SIGKILL, the dataset commands on the version, and the real embedded model.
The template arithmetic (pre-query prefix, turn ends, cutting leaked turns) is checked on the
template families real models ship.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2
import pytest

from selfinstruct._errors import InputError
from selfinstruct.chat_template import (
    ChatTemplate,
    props_url,
    template_from_file,
    template_from_gguf,
    template_from_props,
)
from selfinstruct.gguf_metadata import read_metadata
from tests.pause import kill_paused
from tests.servers.kinds.kind_magpie import CHAT_TEMPLATE, PROPS
from tests.servers.openai_server import RunningServer, start_server

ROOT = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "selfinstruct"]
PREFIX = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
TOKENS = ("<|im_start|>", "<|im_end|>")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return {**env, "OPENAI_API_KEY": "test-key", **extra}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], cwd=ROOT, env=env or _env(), capture_output=True,
                          text=True, timeout=600)


def _generate_args(url: str, data_dir: Path, n: int, *extra: str,
                   lang: str = "en") -> list[str]:
    """No --seeds (magpie needs none) and no --api (raw completions are its default)."""
    return ["generate", "--recipe", "magpie", "--language", lang,
            "--num-instructions", str(n), "--dataset", "m", "--data-dir", str(data_dir),
            "--base-url", url, "--model", "test-model", "--seed", "3", "--no-progress", *extra]


def _generate(url: str, data_dir: Path, n: int, *extra: str,
              lang: str = "en") -> subprocess.CompletedProcess[str]:
    return _cli(*_generate_args(url, data_dir, n, *extra, lang=lang))


def _version(result: subprocess.CompletedProcess[str]) -> Path:
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(result.stdout.strip().splitlines()[-1])


def _rows(version: Path, name: str = "train.jsonl") -> list[dict[str, Any]]:
    return [json.loads(line) for line in (version / name).read_text("utf-8").splitlines()]


def _set_props(server: RunningServer, props: dict[str, Any] | None) -> None:
    httpx2.post(f"{server.url}/_props", content=json.dumps(props),
                timeout=10).raise_for_status()


def _completions(server: RunningServer) -> list[dict[str, Any]]:
    return [r["body"] for r in server.requests() if r["path"] == "/v1/completions"]


# -- the chat template -------------------------------------------------------------------------

LLAMA3 = ("{% for message in messages %}{% set content = '<|start_header_id|>' + "
          "message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + "
          "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
          "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
MISTRAL = ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
           "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate') }}"
           "{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + "
           "' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + "
           "eos_token }}{% else %}{{ raise_exception('Only user and assistant roles are "
           "supported!') }}{% endif %}{% endfor %}")
GEMMA = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System "
         "role not supported') }}{% endif %}{% for message in messages %}{% if "
         "(message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = "
         "message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] "
         "| trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}"
         "{{'<start_of_turn>model\n'}}{% endif %}")


@pytest.mark.parametrize(("source", "eos", "prefix", "user_stops", "answer_stops", "system"), [
    (CHAT_TEMPLATE, "<|im_end|>", PREFIX, ("<|im_end|>",), ("<|im_end|>",), True),
    (LLAMA3, "<|eot_id|>", "<|start_header_id|>user<|end_header_id|>\n\n", ("<|eot_id|>",),
     ("<|eot_id|>",), True),
    (MISTRAL, "</s>", "[INST] ", ("[/INST]", "</s>"), ("</s>",), False),
    (GEMMA, "<eos>", "<start_of_turn>user\n", ("<end_of_turn>", "<eos>"),
     ("<end_of_turn>", "<eos>"), False),
], ids=["chatml", "llama3", "mistral", "gemma"])
def test_template_families_give_prefix_turn_ends_and_cuts(
        source: str, eos: str, prefix: str, user_stops: tuple[str, ...],
        answer_stops: tuple[str, ...], system: bool) -> None:
    template = ChatTemplate(source, "t.j2", eos_token=eos)
    assert template.pre_query() == prefix
    assert template.user_stops == user_stops
    assert template.assistant_stops == answer_stops
    assert template.has_system is system
    # A persona's system message reaches the prefix only where the template has the role.
    assert ("Bees." in template.pre_query("Bees.")) is system
    prompt = template.answer_prompt("Name a fruit.")
    assert prompt.startswith(prefix) and "Name a fruit." in prompt
    # A model that ignored the stop strings and wrote on into the next turn is cut there;
    # a header it repeated first is skipped; HTML in an answer is not a template token.
    assert template.cut(f"Name a fruit.{user_stops[0]}\nmore") == ("Name a fruit.", True)
    assert template.cut("Name a fruit.\n<|im_start|>assistant\nOk") == ("Name a fruit.\n",
                                                                         True)
    assert template.cut("Use <b>bold</b> here.") == ("Use <b>bold</b> here.", False)
    opener = template.cut(prefix.strip().split("\n")[-1] + "\nWhat is rain?" + user_stops[0])
    assert opener == ("\nWhat is rain?", True)


@pytest.mark.parametrize(("source", "why"), [
    ("{{ messages[0]['content'] }}", "marks no end of the user turn"),
    ("Hello.", "renders no user turn"),
    ("{% if %}", "does not compile"),
    ("{{ raise_exception('no') }}", "renders no user turn"),
])
def test_unusable_templates_are_refused_in_one_line(source: str, why: str) -> None:
    with pytest.raises(InputError, match=why) as error:
        ChatTemplate(source, "t.j2")
    assert "\n" not in str(error.value) and str(error.value).startswith("t.j2: ")


def test_template_files_jinja_and_tokenizer_config(tmp_path: Path) -> None:
    jinja = tmp_path / "chat.jinja"
    jinja.write_text(CHAT_TEMPLATE, encoding="utf-8")
    assert template_from_file(jinja).pre_query() == PREFIX
    config = tmp_path / "tokenizer_config.json"
    config.write_text(json.dumps({
        "chat_template": [{"name": "tool_use", "template": "x"},
                          {"name": "default", "template": LLAMA3}],
        "eos_token": {"content": "<|eot_id|>", "lstrip": False}}), encoding="utf-8")
    template = template_from_file(config)
    assert template.eos_token == "<|eot_id|>" and template.user_stops == ("<|eot_id|>",)
    config.write_text('{"eos_token": "</s>"}', encoding="utf-8")
    with pytest.raises(InputError, match="field 'chat_template': missing"):
        template_from_file(config)
    with pytest.raises(InputError, match="not found"):
        template_from_file(tmp_path / "missing.jinja")


def test_props_are_read_with_the_key_and_refused_clearly(openai_server: RunningServer) -> None:
    assert props_url("http://h:1/v1/") == "http://h:1/props"
    assert props_url("http://h:1/api/v1?key=k") == "http://h:1/api/props?key=k"
    template = template_from_props(openai_server.base_url, "test-key")
    assert template.source == PROPS["chat_template"] and template.eos_token == "<|im_end|>"
    with pytest.raises(InputError, match="HTTP 401"):
        template_from_props(openai_server.base_url, None)  # the key must be sent
    _set_props(openai_server, None)
    with pytest.raises(InputError, match=r"HTTP 404.*--chat-template"):
        template_from_props(openai_server.base_url, "test-key")
    # Credentials in the URL (a password, a key in the query) never reach the message.
    for url in (openai_server.base_url.replace("http://", "http://user:s3cret-pw@"),
                f"{openai_server.base_url}?api_key=s3cret-pw",
                "http://user:s3cret-pw@127.0.0.1:9/v1"):
        with pytest.raises(InputError, match=r"GET http://127\.0\.0\.1:") as error:
            template_from_props(url, "test-key")
        assert "s3cret-pw" not in str(error.value)
    _set_props(openai_server, {"model_path": "x.gguf"})
    with pytest.raises(InputError, match="gave no chat_template"):
        template_from_props(openai_server.base_url, "test-key")


def test_embedded_model_template_comes_from_its_gguf_metadata(tmp_path: Path) -> None:
    template = template_from_gguf()
    assert template.eos_token == "<|im_end|>"
    assert template.pre_query().endswith("<|im_end|>\n<|im_start|>user\n")
    assert "SmolLM" in template.pre_query()  # its own default system message
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + b"\x01\x00")
    with pytest.raises(InputError, match="truncated GGUF metadata"):
        read_metadata(broken, {"tokenizer.chat_template"})
    broken.write_bytes(b"PK\x03\x04")
    with pytest.raises(InputError, match="not a GGUF model file"):
        read_metadata(broken, {"tokenizer.chat_template"})


# -- end to end on the test server -------------------------------------------------------------


def test_clean_run_writes_a_valid_version_that_the_dataset_commands_take(
        tmp_path: Path, openai_server: RunningServer) -> None:
    version = _version(_generate(openai_server.base_url, tmp_path / "data", 12))
    rows = _rows(version)
    manifest = json.loads((version / "manifest.json").read_text("utf-8"))
    assert len({r["task_id"] for r in rows}) == 12 and manifest["target"]["reached"]
    assert all(r["instruction"] and r["output"] and r["input"] == "" for r in rows)
    assert not any(t in r["instruction"] + r["output"] for r in rows for t in TOKENS)
    assert manifest["config"]["recipe"] == "magpie"
    assert manifest["usage"]["magpie"]["requests"] >= 12
    assert manifest["usage"]["answer"]["requests"] >= 12
    sent = _completions(openai_server)
    asks = [b for b in sent if b["prompt"] == PREFIX]
    answers = [b for b in sent if b["prompt"] != PREFIX]
    # Instructions: only the template's pre-query prefix, sampled, stopped at the user
    # turn's end; answers: the whole conversation, greedy, stopped at the assistant's end.
    assert len(asks) == manifest["usage"]["magpie"]["requests"]
    assert {(b["temperature"], tuple(b["stop"])) for b in asks} == {(1.0, ("<|im_end|>",))}
    assert len({b["seed"] for b in asks}) == len(asks)
    assert {(b["temperature"], tuple(b["stop"])) for b in answers} == {(0.0, ("<|im_end|>",))}
    asked = {b["prompt"][len(PREFIX):-len("<|im_end|>\n<|im_start|>assistant\n")]
             for b in answers}
    assert {r["instruction"] for r in rows} <= asked
    assert all(b["prompt"].startswith(PREFIX) for b in answers)

    assert _cli("validate", str(version)).returncode == 0
    exported = _cli("export", str(version), "--format", "openai-chat")
    assert exported.returncode == 0, exported.stderr
    first = json.loads(exported.stdout.splitlines()[0])
    assert [m["role"] for m in first["messages"]][-2:] == ["user", "assistant"]
    released = _cli("release", str(version), "--output-dir", str(tmp_path / "dist"))
    assert released.returncode == 0, released.stderr
    assert (tmp_path / "dist" / "m-v0001.tar.gz").is_file()


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_messy_answers_become_rows_or_reasoned_rejections(tmp_path: Path, lang: str) -> None:
    with start_server(style="messy") as server:
        version = _version(_generate(server.base_url, tmp_path / "data", 40, lang=lang))
        offered = server.offered()
    rows, rejected = _rows(version), _rows(version, "rejected.jsonl")
    assert len({r["task_id"] for r in rows}) == 40
    assert not any(t in r["instruction"] + r["output"] for r in rows for t in TOKENS)
    if lang == "ja":
        assert all(any("\u3040" <= c <= "\u9fff" for c in r["instruction"]) for r in rows)
    shapes = {o["id"]: (o["shapes"] or ["plain"])[0] for o in offered if o["kind"] == "magpie"}
    by_request: dict[str | None, list[dict[str, Any]]] = {}
    for row in rejected:
        by_request.setdefault(row["request_id"], []).append(row)
    reasons = {request: {(r["stage"], r["reason"]) for r in found}
               for request, found in by_request.items()}
    seen = Counter(shapes.values())
    for shape in ("never_ends", "leaked_turn", "repeated_header", "refusal", "empty",
                  "cut_off"):
        assert seen[shape] >= 1, (shape, seen)  # the seed exercises every messy shape
    for request, shape in shapes.items():
        got = reasons.get(request, set())
        if shape == "never_ends":
            assert got == {("parse", "truncated")}, got
        elif shape == "empty":
            assert ("parse", "unparseable_answer") in got, got
        elif shape == "cut_off":
            assert ("instance_filter", "truncated") in got, got
        elif shape == "refusal":
            assert got & {("filter", "refusal"), ("instance_filter", "refusal")}, got
        elif shape in ("leaked_turn", "repeated_header"):
            # The instruction before the leak (or after the repeated header) was read.
            assert not got & {("parse", "truncated"), ("parse", "unparseable_answer")}, got
    truncated = [r for r in rejected if r["reason"] == "truncated" and r["stage"] == "parse"]
    assert all("never ended" in r["detail"] for r in truncated)
    empty = [r for r in rejected if r["reason"] == "unparseable_answer"]
    assert all(r["detail"] for r in empty)
    assert _cli("validate", str(version)).returncode == 0


# -- refusals: one line, exit 2, nothing written -----------------------------------------------


def _refused(result: subprocess.CompletedProcess[str], data_dir: Path, needle: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.stderr
    assert not data_dir.exists() or not any(data_dir.rglob("*"))


def test_chat_api_is_refused(tmp_path: Path, openai_server: RunningServer) -> None:
    args = _generate_args(openai_server.base_url, tmp_path / "data", 3, "--api", "chat")
    _refused(_cli(*args), tmp_path / "data", "needs raw completions (--api completions)")
    assert _completions(openai_server) == []


def test_endpoint_without_template_is_refused(tmp_path: Path,
                                              openai_server: RunningServer) -> None:
    _set_props(openai_server, None)
    result = _generate(f"{openai_server.base_url}?api_key=s3cret-pw", tmp_path / "data", 3)
    _refused(result, tmp_path / "data", "does not report its chat template")
    assert "--chat-template" in result.stderr and "s3cret-pw" not in result.stderr


def test_template_without_user_turn_is_refused(tmp_path: Path,
                                               openai_server: RunningServer) -> None:
    template = tmp_path / "bad.jinja"
    template.write_text("{{ messages | length }}", encoding="utf-8")
    result = _generate(openai_server.base_url, tmp_path / "data", 3,
                       "--chat-template", str(template))
    _refused(result, tmp_path / "data", "renders no user turn")


def test_chat_template_file_is_used_instead_of_props(tmp_path: Path,
                                                     openai_server: RunningServer) -> None:
    _set_props(openai_server, None)  # the file alone must be enough
    own = CHAT_TEMPLATE.replace("You are a helpful assistant.", "You write tidy questions.")
    config = tmp_path / "tokenizer_config.json"
    config.write_text(json.dumps({"chat_template": own, "eos_token": "<|im_end|>"}),
                      encoding="utf-8")
    version = _version(_generate(openai_server.base_url, tmp_path / "data", 4,
                                 "--chat-template", str(config)))
    assert len({r["task_id"] for r in _rows(version)}) == 4
    prompts = {b["prompt"] for b in _completions(openai_server)}
    assert PREFIX.replace("You are a helpful assistant.", "You write tidy questions.") in prompts
    assert not any("You are a helpful assistant." in p for p in prompts)


def test_personas_go_into_the_system_message_when_the_template_has_one(
        tmp_path: Path, openai_server: RunningServer) -> None:
    version = _version(_generate(openai_server.base_url, tmp_path / "data", 6,
                                 "--personas", "en"))
    personas = {json.loads(line)["id"]: json.loads(line)["description"] for line in
                (ROOT / "seeds" / "personas" / "en.jsonl").read_text("utf-8").splitlines()}
    rows = _rows(version)
    assert all(r["provenance"]["persona_id"] in personas for r in rows)
    prompts = [b["prompt"] for b in _completions(openai_server)]
    for row in rows:
        system = f"The user you are talking with: {personas[row['provenance']['persona_id']]}"
        # The instruction was asked for, and answered, under its persona's system message.
        assert any(p.endswith("<|im_start|>user\n") and system in p for p in prompts)
        assert any(system in p and f"user\n{row['instruction']}<|im_end|>" in p
                   for p in prompts)
    assert "You are a helpful assistant." not in "".join(prompts)


def test_a_template_without_system_role_gets_no_persona(tmp_path: Path,
                                                        openai_server: RunningServer) -> None:
    no_system = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
                 "supported') }}{% endif %}" + CHAT_TEMPLATE.replace(
                     "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}",
                     ""))
    template = tmp_path / "no_system.jinja"
    template.write_text(no_system, encoding="utf-8")
    version = _version(_generate(openai_server.base_url, tmp_path / "data", 4,
                                 "--personas", "en", "--chat-template", str(template)))
    assert all("persona_id" not in r["provenance"] for r in _rows(version))
    asks = {b["prompt"] for b in _completions(openai_server) if b["prompt"].endswith("user\n")}
    assert asks == {"<|im_start|>user\n"}


# -- resume after SIGKILL ----------------------------------------------------------------------


def _comparable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows without the server's request ids (they carry its request counter)."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if "request_id" not in k}
        return value
    return [strip(r) for r in rows]


def _killed_at(point: str, url: str, data_dir: Path, fifo: Path, n: int) -> None:
    """Start a run that stops at `point` (selfinstruct.interrupts.pause_point) and SIGKILL it
    there: no handler runs, like a crash."""
    kill_paused([*COMMAND, *_generate_args(url, data_dir, n, "--concurrency", "4")], point,
                fifo, _env())


@pytest.mark.parametrize("point", ["after:bootstrap-round:2", "after:answer-batch:1"])
def test_resume_after_sigkill_gives_the_rows_of_an_uninterrupted_run(tmp_path: Path,
                                                                     point: str) -> None:
    n = 40
    with start_server(style="messy") as server:
        reference = _rows(_version(_generate(server.base_url, tmp_path / "ref", n,
                                             "--concurrency", "4")))
    with start_server(style="messy") as server:
        _killed_at(point, server.base_url, tmp_path / "data", tmp_path / "pause.fifo", n)
        assert not list((tmp_path / "data" / "m").glob("v0*"))
        resumed = _cli("generate", "--dataset", "m", "--data-dir", str(tmp_path / "data"),
                       "--resume", "--no-progress")
        version = _version(resumed)
        rows = _rows(version)
    usage = json.loads((version / "manifest.json").read_text("utf-8"))["usage"]
    assert usage["magpie"]["cached"] > 0  # the killed run's answers were replayed
    assert _comparable(rows) == _comparable(reference)


def test_a_resume_refuses_a_chat_template_that_changed(tmp_path: Path) -> None:
    """The template shapes every request: if the endpoint now serves another one, the
    journaled answers would all be orphaned and bought again, so the resume stops first."""
    with start_server() as server:
        _killed_at("after:bootstrap-round:1", server.base_url, tmp_path / "data",
                   tmp_path / "pause.fifo", 10)
        changed = CHAT_TEMPLATE.replace("You are a helpful assistant.", "You are terse.")
        _set_props(server, {"chat_template": changed, "bos_token": "<|endoftext|>",
                            "eos_token": "<|im_end|>"})
        before = len(_completions(server))
        resumed = _cli("generate", "--dataset", "m", "--data-dir", str(tmp_path / "data"),
                       "--resume", "--no-progress")
        assert resumed.returncode == 2, resumed.stderr
        (line,) = resumed.stderr.strip().splitlines()
        assert line.startswith("selfinstruct: error: the chat template of ")
        assert "changed since the run started" in line
        assert len(_completions(server)) == before  # nothing was sent


# -- the real embedded model -------------------------------------------------------------------


def test_embedded_model_writes_magpie_rows(tmp_path: Path) -> None:
    """SmolLM2-135M through llama.cpp on 127.0.0.1: its template from its GGUF; no seeds,
    no endpoint, no template flag."""
    result = _cli("generate", "--recipe", "magpie", "--num-instructions", "3",
                  "--dataset", "demo", "--data-dir", str(tmp_path), "--seed", "5",
                  "--no-progress")
    version = _version(result)
    rows = _rows(version)
    manifest = json.loads((version / "manifest.json").read_text("utf-8"))
    assert manifest["endpoint_kind"] == "embedded" and manifest["api"] == "completions"
    assert len({r["task_id"] for r in rows}) >= 3
    assert all(r["instruction"] and r["output"] for r in rows)
    assert not any(t in r["instruction"] + r["output"] for r in rows for t in TOKENS)
    assert manifest["usage"]["magpie"]["requests"] >= 3
    assert manifest["usage"]["answer"]["requests"] >= 3
