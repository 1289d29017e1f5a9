"""A model's chat template, for magpie: the pre-query prefix, the answer prompt, the turn ends.

Magpie (Xu et al. 2024) sends an aligned model only the text its chat template puts before a
user's message; the model, trained to continue such text with what users write, writes an
instruction and ends the user turn. This module finds that text from the template itself:
it renders a conversation whose user message is a sentinel string (jinja2, sandboxed, with
the `raise_exception`/`bos_token`/`eos_token`/`add_generation_prompt` variables Hugging Face
templates expect) and cuts at the sentinel. The same renders give the end-of-turn markers the
answers are cut at, whatever the template family (ChatML, Llama 3, Mistral, Gemma …).

Where the template comes from (`load_chat_template`): `--chat-template FILE` (a Jinja file as
in tokenizer_config.json, or a JSON file holding `chat_template`), else the embedded model's
GGUF metadata, else llama.cpp's `GET /props` on the run's endpoint. Magpie needs raw
completions: a chat endpoint applies the template itself, so `--api chat` is refused.

`bos_token` renders as "": llama.cpp and vLLM prepend BOS to a completion prompt themselves
when the model wants one, so a template's own `{{ bos_token }}` would double it. `strftime_now`
is left undefined, so templates that print today's date fall back to their fixed default:
a prompt that changed with the calendar would miss the journal on resume.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import jinja2
import jinja2.sandbox

from selfinstruct._errors import InputError
from selfinstruct.redact import strip_url_credentials

if TYPE_CHECKING:
    from selfinstruct.config import GenerateConfig

# Stand-ins for message contents: no template or model writes these.
_USER = "\x00magpie-user-sentinel\x00"
_SYSTEM = "\x00magpie-system-sentinel\x00"
_ASSISTANT = "\x00magpie-assistant-sentinel\x00"
_NEXT_USER = "\x00magpie-next-user-sentinel\x00"
# Special-token shapes in a template's turn scaffolding: <|im_end|>, <|eot_id|>,
# <end_of_turn>, </s>, [INST], [/INST] … Those the template uses end an instruction or an
# answer wherever they appear; the <|…|> shape ends one even when this template does not use
# it (no prose contains it), while <tag> shapes not in the template may be HTML in an answer.
_SPECIAL = re.compile(r"<\|[^<>|\s]{1,40}\|>|</?[A-Za-z_][\w-]{0,39}>|\[/?[A-Z_]{2,20}\]")
_LEAKED = re.compile(r"<\|[^<>|\s]{1,40}\|>")
_PROPS_TIMEOUT = 30.0


def _raise(message: str) -> None:
    raise jinja2.TemplateError(message)


def _tojson(value: Any, indent: int | None = None) -> str:
    """Hugging Face's `tojson`: non-ASCII kept as is (Jinja's own escapes it and HTML)."""
    return json.dumps(value, ensure_ascii=False, indent=indent)


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template and what magpie derives from it; `origin` names where it came from."""

    source: str
    origin: str
    eos_token: str = ""
    _compiled: jinja2.Template = field(init=False, repr=False, compare=False)

    @property
    def sha256(self) -> str:
        """What a run records of its template (run.json, manifest): a resume against an
        endpoint that now serves another one is refused instead of paying again."""
        return hashlib.sha256(f"{self.source}\x00{self.eos_token}".encode()).hexdigest()

    def __post_init__(self) -> None:
        # The environment Hugging Face's apply_chat_template renders with.
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
        env.globals["raise_exception"] = _raise
        env.filters["tojson"] = _tojson
        try:
            compiled = env.from_string(self.source)
        except jinja2.TemplateError as exc:
            raise InputError(f"{self.origin}: the chat template does not compile: {exc}") \
                from None
        object.__setattr__(self, "_compiled", compiled)
        self._check()

    # -- rendering -------------------------------------------------------------------------

    def render(self, messages: list[dict[str, str]], generation_prompt: bool) -> str:
        return self._compiled.render(messages=messages, add_generation_prompt=generation_prompt,
                                     bos_token="", eos_token=self.eos_token)

    def _render_or_none(self, messages: list[dict[str, str]],
                        generation_prompt: bool) -> str | None:
        try:
            return self.render(messages, generation_prompt)
        except jinja2.TemplateError:
            return None

    @staticmethod
    def _conversation(system: str | None, *turns: str) -> list[dict[str, str]]:
        roles = ("user", "assistant")
        messages = [{"role": "system", "content": system}] if system is not None else []
        return messages + [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]

    def _check(self) -> None:
        """Refuse a template magpie cannot use, with the reason, before any request."""
        text = self._render_or_none(self._conversation(None, _USER), False)
        if text is None or text.count(_USER) != 1:
            raise InputError(f"{self.origin}: the chat template renders no user turn (a user "
                             f"message did not appear in it once): magpie needs a chat "
                             f"template with a user role")
        if not self.user_stops:
            raise InputError(f"{self.origin}: the chat template marks no end of the user "
                             f"turn: magpie could not tell where an instruction ends")

    @cached_property
    def has_system(self) -> bool:
        """Whether a system message reaches the prompt (Gemma's templates refuse one)."""
        text = self._render_or_none(self._conversation(_SYSTEM, _USER), False)
        return text is not None and _SYSTEM in text and _USER in text

    # -- what magpie sends -------------------------------------------------------------------

    def pre_query(self, system: str | None = None) -> str:
        """Everything the template writes before a user's message: the instruction prompt."""
        text = self.render(self._conversation(self._system(system), _USER), False)
        return text[:text.index(_USER)]

    def answer_prompt(self, instruction: str, system: str | None = None) -> str:
        """The conversation (system, user = instruction), ready for the assistant's answer."""
        return self.render(self._conversation(self._system(system), instruction), True)

    def _system(self, system: str | None) -> str | None:
        return system if system and self.has_system else None

    # -- where turns end ---------------------------------------------------------------------

    @cached_property
    def _user_end(self) -> str:
        text = self.render(self._conversation(None, _USER), False)
        return text[text.index(_USER) + len(_USER):].strip()

    @cached_property
    def _generation_prompt(self) -> str:
        without = self.render(self._conversation(None, _USER), False)
        return self.render(self._conversation(None, _USER), True)[len(without):].strip()

    @cached_property
    def _between_turns(self) -> str:
        """What separates an assistant message from the next user message."""
        text = self._render_or_none(self._conversation(None, _USER, _ASSISTANT, _NEXT_USER),
                                    False)
        if text is None or _ASSISTANT not in text or _NEXT_USER not in text:
            return ""
        return text[text.index(_ASSISTANT) + len(_ASSISTANT):text.index(_NEXT_USER)]

    @cached_property
    def user_stops(self) -> tuple[str, ...]:
        """Stop strings of an instruction request: the end of the user turn (or, for a
        template that writes nothing there, the assistant's opening) and the EOS token."""
        end = self._user_end or self._generation_prompt.split("\n")[0].strip()
        return tuple(dict.fromkeys(s for s in (end, self.eos_token) if s))

    @cached_property
    def assistant_stops(self) -> tuple[str, ...]:
        """Stop strings of an answer request: the end of the assistant turn and EOS."""
        end = self._between_turns.strip().split("\n")[0].strip()
        specials = _SPECIAL.findall(end)
        return tuple(dict.fromkeys(s for s in (specials[0] if specials else end,
                                                self.eos_token) if s))

    @cached_property
    def markers(self) -> tuple[str, ...]:
        """Template text that never belongs in an instruction or an answer: the special
        tokens of the turn scaffolding, its lines, and EOS; longest first."""
        pieces = [self._user_end, self._generation_prompt, self._between_turns, self.eos_token]
        found = {token for piece in pieces for token in _SPECIAL.findall(piece)}
        found |= {line.strip() for piece in pieces for line in piece.split("\n")}
        return tuple(sorted((m for m in found if m), key=lambda m: (-len(m), m)))

    @cached_property
    def _openers(self) -> tuple[str, ...]:
        """The headers that open a user turn and the assistant's turn (<|im_start|>user)."""
        between = self._between_turns.strip()
        ends = [e for e in self.assistant_stops if between.startswith(e)]
        user = between[len(ends[0]):].strip() if ends else ""
        return tuple(o for o in (user, self._generation_prompt) if o)

    def cut(self, text: str) -> tuple[str, bool]:
        """The text before the first template marker or special token, and whether one was
        found (a model that ignored the stop strings and wrote on into the next turn).

        A header the model repeated first (it "opened" the turn it was already in) is
        skipped rather than taken as the end of an empty turn.
        """
        head = text.lstrip()
        for opener in self._openers:
            if head.startswith(opener):
                text = head[len(opener):]
                break
        ends = [i for i in (text.find(m) for m in self.markers) if i >= 0]
        leaked = _LEAKED.search(text)
        if leaked is not None:
            ends.append(leaked.start())
        return (text[:min(ends)], True) if ends else (text, False)


# -- finding the template ----------------------------------------------------------------------


def load_chat_template(config: GenerateConfig, api_key: str | None) -> ChatTemplate:
    """The run's chat template, or one line saying why magpie cannot run on this endpoint."""
    if config.api == "chat":
        raise InputError("--recipe magpie needs raw completions (--api completions): a chat "
                         "endpoint applies the chat template itself, so the model cannot be "
                         "sent only the text before a user's message")
    if config.chat_template is not None:
        return template_from_file(config.chat_template)
    if config.embedded:
        return template_from_gguf()
    return template_from_props(str(config.base_url), api_key)


def template_from_file(path: Path) -> ChatTemplate:
    """A Jinja chat template file, or JSON with `chat_template` (tokenizer_config.json)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: chat template file not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not valid UTF-8") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the chat template: {exc.strerror}") from None
    if path.suffix.lower() != ".json":
        return ChatTemplate(text, str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object with a 'chat_template' field")
    return ChatTemplate(_template_text(data.get("chat_template"), f"{path}: field "
                                       f"'chat_template'"),
                        str(path), eos_token=_token_text(data.get("eos_token")))


def _template_text(value: Any, where: str) -> str:
    """A template string; tokenizer_config.json may hold named ones ([{name, template}])."""
    if isinstance(value, list):
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        value = named.get("default")
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: missing or not a template string")
    return value


def _token_text(value: Any) -> str:
    """A special token as tokenizer_config.json writes it: a string or {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else ""


def template_from_gguf(path: Path | None = None) -> ChatTemplate:
    """The embedded model's template and EOS token, from its GGUF metadata."""
    from selfinstruct.gguf_metadata import read_metadata
    from selfinstruct.local_model import model_path

    path = path or model_path()
    keys = ("tokenizer.chat_template", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.tokens")
    meta = read_metadata(path, keys)
    tokens, eos_id = meta.get("tokenizer.ggml.tokens") or [], meta.get(keys[1])
    eos = tokens[eos_id] if isinstance(eos_id, int) and 0 <= eos_id < len(tokens) else ""
    return ChatTemplate(_template_text(meta.get(keys[0]), f"{path}: tokenizer.chat_template"),
                        f"{path.name} (GGUF metadata)", eos_token=eos)


def props_url(base_url: str) -> str:
    """llama.cpp's /props beside the OpenAI routes: the base URL without its /v1 suffix."""
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/")
    path = path[:-3] if path.endswith("/v1") else path
    return urlunsplit((parts.scheme, parts.netloc, f"{path}/props", parts.query, ""))


def template_from_props(base_url: str, api_key: str | None) -> ChatTemplate:
    """The template llama.cpp's server reports (`chat_template`, `eos_token`)."""
    import httpx2

    url = props_url(base_url)
    shown = strip_url_credentials(url)  # the URL may carry a password or a key
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    advice = ("pass the model's template with --chat-template FILE (its tokenizer_config.json "
              "or a Jinja file)")
    try:
        reply = httpx2.get(url, headers=headers, timeout=_PROPS_TIMEOUT)
    except httpx2.HTTPError as exc:
        raise InputError(f"GET {shown} failed ({type(exc).__name__}): magpie needs the "
                         f"model's chat template; {advice}") from None
    if reply.status_code != 200:
        raise InputError(f"GET {shown} answered HTTP {reply.status_code}: this endpoint does "
                         f"not report its chat template (llama.cpp's server does); {advice}")
    try:
        props = reply.json()
    except ValueError:
        props = None
    if not isinstance(props, dict) or not isinstance(props.get("chat_template"), str) \
            or not props["chat_template"].strip():
        raise InputError(f"GET {shown} gave no chat_template: {advice}")
    return ChatTemplate(props["chat_template"], f"GET {shown}",
                        eos_token=_token_text(props.get("eos_token")))
