"""Where evol-instruct starts: the seed instructions, or the instructions of an earlier version.

A parent is an instruction the recipe may evolve, with its lineage: a stable id (so a row can
name where it came from) and its generation (0 for a starting instruction, parent's + 1 for an
evolved one). Ids live in three namespaces that cannot collide:

* ``seed:<seed id>`` — a task of the seed file;
* ``<dataset>/<vNNNN>:<task id>`` — a task of the version given with ``--from-version``;
* ``task-NNNNNN`` — an instruction this run accepted (the engine's task ids).

A starting instruction carries its first instance's input when it has one (on its own line
after the instruction): most seed tasks ("Decide whether the sentiment of this tweet is …")
mean nothing without it, and Evol-Instruct's rewritten prompts are answered on their own,
with an empty input, so the input has to travel inside the instruction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from selfinstruct._errors import InputError
from selfinstruct.dataset.files import read_train_rows
from selfinstruct.dataset.validate import InvalidDatasetError, require_valid
from selfinstruct.recipes.base import prompt_instruction
from selfinstruct.seeds import SeedSet


@dataclass(frozen=True)
class Parent:
    """An instruction the recipe may evolve, and where it sits in its lineage.

    `text` is what the mutation prompt shows (the instruction with its input);
    `instruction` the instruction alone, as the novelty index knows it.
    """

    id: str
    text: str
    generation: int
    instruction: str


def starting_parent(parent_id: str, instruction: str, input_: str) -> Parent:
    """A generation-0 parent, made self-contained: its input (if any) on the next line."""
    instruction, input_ = instruction.strip(), input_.strip()
    text = f"{instruction}\n{input_}" if input_ else prompt_instruction(instruction)
    return Parent(parent_id, text, 0, instruction)


def seed_parents(seeds: SeedSet) -> list[Parent]:
    """Generation 0 from the seed file, in file order."""
    return [starting_parent(f"seed:{task.id}", task.instruction,
                            task.instances[0].input if task.instances else "")
            for task in seeds.tasks]


def check_from_version(path: Path) -> Path:
    """The validated version folder `path` names (`data/NAME/vNNNN`, `data/NAME/latest`).

    Every problem is one InputError line naming the version (a version that fails validation
    is bad input here, exit code 2, not a failed `validate`).
    """
    try:
        return require_valid(path)
    except InvalidDatasetError as exc:
        raise InputError(f"--from-version {path}: not a valid version: {exc}") from None
    except InputError as exc:
        raise InputError(f"--from-version {path}: {exc}") from None


def version_parents(path: Path) -> list[Parent]:
    """Generation 0 from a version's train.jsonl: each distinct task once, in row order.

    A task's first row gives its input (a Self-Instruct task has several instances). Tasks
    whose instruction text repeats an earlier task's are skipped: evolving the same text twice
    would only feed the novelty filter.
    """
    folder = check_from_version(path)
    prefix = f"{folder.parent.name}/{folder.name}"
    parents: list[Parent] = []
    seen_tasks: set[str] = set()
    seen_texts: set[str] = set()
    for row in read_train_rows(folder):
        task_id, instruction = row["task_id"], row["instruction"]
        if task_id in seen_tasks or instruction in seen_texts:
            continue
        seen_tasks.add(task_id)
        seen_texts.add(instruction)
        parents.append(starting_parent(f"{prefix}:{task_id}", instruction, row["input"]))
    if not parents:
        raise InputError(f"--from-version {path}: {folder} has no train rows to evolve")
    return parents
