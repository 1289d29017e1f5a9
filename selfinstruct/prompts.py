"""Prompt templates: files under ``prompts/<language>/``, rendered with Jinja2.

Templates are files, not strings in code, so users can read and change what is sent to the
model without touching Python. Each language folder holds the same template names and a
``labels.json`` with the words the answers are parsed by ("Input", "入力", ...): the parser
reads the same file, so a translated template and its parser cannot drift apart.

Every rendered prompt is hashed (sha256 of its UTF-8 bytes) and the hash is stored on each
record it produced, so a row can be traced to the exact text that made it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from selfinstruct._errors import InputError

TEMPLATE_NAMES = (
    "bootstrap",
    "classify",
    "instances_input_first",
    "instances_output_first",
    "alpaca",
    "label",  # selfinstruct.quality: the second label sample of the consistency check
    "judge",  # selfinstruct.quality: the LLM judge's rubric
)
LANGUAGES = ("en", "ja")


def bundled_dir(name: str) -> Path:
    """Find a data folder shipped with the project (``prompts`` or ``seeds``).

    In a source checkout (editable install) they sit at the repository root; a built wheel
    carries them in ``selfinstruct/_bundled/``.
    """
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "_bundled" / name, package_dir.parent / name):
        if candidate.is_dir():
            return candidate
    raise InputError(f"cannot find the bundled '{name}' folder next to {package_dir}")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Labels:
    """Words that mark fields in model answers, per language."""

    task: str
    example: str
    input: str
    output: str
    class_label: str
    instruction: str
    no_input: str
    yes: tuple[str, ...]
    no: tuple[str, ...]


class PromptSet:
    """The templates and labels of one language, loaded once per run."""

    def __init__(self, language: str, prompts_dir: Path | None = None) -> None:
        root = prompts_dir or bundled_dir("prompts")
        self.language = language
        self.dir = root / language
        if not self.dir.is_dir():
            raise InputError(f"{self.dir}: no prompt templates for language '{language}'")
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(self.dir),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # plain-text prompts, never HTML
        )
        self._templates: dict[str, jinja2.Template] = {}
        self.template_hashes: dict[str, str] = {}
        for name in TEMPLATE_NAMES:
            path = self.dir / f"{name}.j2"
            try:
                source = path.read_text(encoding="utf-8")
                self._templates[name] = self._env.from_string(source)
            except FileNotFoundError:
                raise InputError(f"{path}: prompt template missing") from None
            except UnicodeDecodeError:
                raise InputError(f"{path}: not valid UTF-8") from None
            except jinja2.TemplateSyntaxError as exc:
                raise InputError(f"{path}:{exc.lineno}: template syntax error: {exc.message}") \
                    from None
            self.template_hashes[name] = sha256_text(source)
        self.labels = _load_labels(self.dir / "labels.json")

    def render(self, name: str, **context: Any) -> str:
        """Render template `name`; a missing variable is a bug, so it raises."""
        return self._templates[name].render(labels=self.labels, **context).strip("\n")


def _load_labels(path: Path) -> Labels:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: labels file missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: invalid JSON: {exc}") from None
    try:
        return Labels(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        )
    except TypeError as exc:
        raise InputError(f"{path}: wrong fields: {exc}") from None
