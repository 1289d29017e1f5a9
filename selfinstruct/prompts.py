"""Prompt templates: files under ``prompts/<language>/``, rendered with Jinja2.

Templates are files, not strings in code, so users can read and change what is sent to the
model without touching Python. Each language folder holds the same template names and a
``labels.json`` with the words the answers are parsed by ("Input", "入力", ...): the parser
reads the same file, so a translated template and its parser cannot drift apart.

Every rendered prompt is hashed (sha256 of its UTF-8 bytes) and the hash is stored on each
record it produced, so a row can be traced to the exact text that made it.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import traceback
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes

from selfinstruct import languages
from selfinstruct._errors import InputError

# Templates the shared stages render; a recipe declares its own (`Recipe.templates`).
TEMPLATE_NAMES = (
    "bootstrap",
    "classify",
    "instances_input_first",
    "instances_output_first",
    "label",  # selfinstruct.quality: the second label sample of the consistency check
    "judge",  # selfinstruct.quality: the LLM judge's rubric
    "answer",  # instances answered directly, in chat (the embedded model's instance mode)
)
LANGUAGES = languages.codes()  # the built-in ones (selfinstruct.languages)

# What each template is rendered with (besides `labels`), as sample values: the variables
# the render calls in selfinstruct/recipes/*.py and quality.py pass, in the same shapes. A
# template is checked against these when it is loaded, so a broken user template fails
# before a request.
_SAMPLE_EXAMPLE = {
    "id": "sample", "name": "sample", "instruction": "Sort the numbers in ascending order.",
    "instances": [{"input": "3, 1, 2", "output": "1, 2, 3"}, {"input": "", "output": "1"}],
    "is_classification": False,
}
_SAMPLE_CONTEXTS: dict[str, dict[str, Any]] = {
    "bootstrap": {"instructions": ["Name a fruit.", "Sort the numbers."]},
    "classify": {"examples": [_SAMPLE_EXAMPLE, {**_SAMPLE_EXAMPLE, "is_classification": True}],
                 "instruction": "Name a fruit."},
    "instances_input_first": {"examples": [_SAMPLE_EXAMPLE], "instruction": "Name a fruit."},
    "instances_output_first": {"examples": [_SAMPLE_EXAMPLE], "instruction": "Name a fruit."},
    "label": {"instruction": "Is it positive?", "input": "Great day",
              "options": ["negative", "positive"]},
    "judge": {"instruction": "Name a fruit.", "input": "", "output": "Apple"},
    "answer": {"instruction": "Name a fruit."},
}


def bundled_dir(name: str) -> Path:
    """Find a data folder shipped with the project (``prompts`` or ``seeds``).

    Running from a source checkout (a ``pyproject.toml`` beside the package, as in an
    editable install) they are the repository's own folders, the ones users edit; a built
    wheel carries them in ``selfinstruct/_bundled/`` (pyproject.toml's force-include). The
    checkout is recognised explicitly so that an installed copy never picks up an unrelated
    ``site-packages/seeds`` folder of some other distribution.
    """
    package_dir = Path(__file__).resolve().parent
    checkout = package_dir.parent
    candidates = [package_dir / "_bundled" / name]
    if (checkout / "pyproject.toml").is_file():
        candidates.insert(0, checkout / name)
    for candidate in candidates:
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
    # The LLM judge's two score names (selfinstruct.quality); English ones are always read too.
    clarity: tuple[str, ...] = ("Clarity",)
    correctness: tuple[str, ...] = ("Correctness",)


class PromptSet:
    """The templates and labels of one language, loaded once per run."""

    def __init__(self, language: str, prompts_dir: Path | None = None,
                 extra_templates: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """`extra_templates`: a recipe's own templates (name -> sample render values), loaded
        and checked like the shared ones (`selfinstruct.recipes.base.Recipe.templates`)."""
        root = prompts_dir or bundled_dir("prompts")
        self._samples = {**_SAMPLE_CONTEXTS, **(extra_templates or {})}
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
        sources: dict[str, str] = {}
        for name in self._samples:
            path = self.dir / f"{name}.j2"
            try:
                sources[name] = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise InputError(f"{path}: prompt template missing") from None
            except UnicodeDecodeError:
                raise InputError(f"{path}: not valid UTF-8") from None
            except OSError as exc:
                raise InputError(f"{path}: cannot read prompt template: {exc.strerror}") \
                    from None
            self._templates[name] = self._compile(name, path, sources[name])
            self.template_hashes[name] = sha256_text(sources[name])
        self.labels = _load_labels(self.dir / "labels.json")
        for name in self._samples:
            self._try_render(name, self.dir / f"{name}.j2")

    def _compile(self, name: str, path: Path, source: str) -> jinja2.Template:
        """Compile one template, refusing names it uses that no render call passes.

        Checked statically, so a misspelt variable in a branch the first prompts do not take
        still fails here, before any request, instead of hours into a paid run.
        """
        try:
            ast = self._env.parse(source, f"{name}.j2", str(path))
            code = self._env.compile(ast, f"{name}.j2", str(path))
        except jinja2.TemplateSyntaxError as exc:
            raise InputError(f"{path}:{exc.lineno}: template syntax error: {exc.message}") \
                from None
        passed = set(self._samples[name]) | {"labels"}
        unknown = sorted(jinja2.meta.find_undeclared_variables(ast) - passed)
        if unknown:
            line = min(node.lineno for node in ast.find_all(jinja2.nodes.Name)
                       if node.name == unknown[0])
            raise InputError(f"{path}:{line}: template uses undefined variable '{unknown[0]}' "
                             f"(this template gets: {', '.join(sorted(passed))})")
        label_fields = {f.name for f in dataclasses.fields(Labels)}
        for node in ast.find_all(jinja2.nodes.Getattr):
            target = node.node
            if isinstance(target, jinja2.nodes.Name) and target.name == "labels" \
                    and node.attr not in label_fields:
                raise InputError(f"{path}:{node.lineno}: template uses undefined "
                                 f"'labels.{node.attr}' (labels.json has: "
                                 f"{', '.join(sorted(label_fields))})")
        return self._env.template_class.from_code(self._env, code,
                                                  self._env.make_globals(None))

    def _try_render(self, name: str, path: Path) -> None:
        """Render a template once on sample values, so a runtime error (an undefined
        attribute of a loop item, a failing filter) is reported before any request.

        A template is user-editable code, so any exception it raises is reported as the
        template's fault, located by the template line in the traceback.
        """
        try:
            self.render(name, **self._samples[name])
        except Exception as exc:
            lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__)
                     if frame.filename == str(path)]
            where = f"{path}:{lines[-1]}" if lines else str(path)
            raise InputError(f"{where}: template error: {type(exc).__name__}: {exc}") \
                from None

    def render(self, name: str, **context: Any) -> str:
        """Render template `name`; a missing variable is a bug, so it raises."""
        return self._templates[name].render(labels=self.labels, **context).strip("\n")


def _load_labels(path: Path) -> Labels:
    """Read ``labels.json``, refusing unknown, missing, empty or mistyped entries.

    The parser matches answers by these words, so an empty or mistyped one would not fail
    loudly: it would silently drop or mislabel every answer of a paid run.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: labels file missing") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno})") \
            from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not valid UTF-8") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read labels file: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object of labels, got {type(data).__name__}")
    hints = typing.get_type_hints(Labels)
    fields = {f.name: f for f in dataclasses.fields(Labels)}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.75)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise InputError(f"{path}: field '{key}': unknown label{hint}")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InputError(f"{path}: field '{name}': missing")
            continue
        values[name] = _label_value(path, name, data[name], hints[name])
    return Labels(**values)


def _label_value(path: Path, name: str, value: Any, hint: Any) -> Any:
    """Check one label against its annotation: a non-empty string, or a non-empty list of
    them for ``tuple[str, ...]`` (stored as a tuple); other annotations by isinstance."""
    if hint is str:
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{path}: field '{name}': expected a non-empty string, got "
                             f"{json.dumps(value, ensure_ascii=False)}")
        return value
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list) or not value or \
                not all(isinstance(v, str) and v.strip() for v in value):
            raise InputError(f"{path}: field '{name}': expected a non-empty list of non-empty "
                             f"strings, got {json.dumps(value, ensure_ascii=False)}")
        return tuple(value)
    if isinstance(hint, type) and not isinstance(value, hint):
        raise InputError(f"{path}: field '{name}': expected {hint.__name__}, got "
                         f"{json.dumps(value, ensure_ascii=False)}")
    return value
