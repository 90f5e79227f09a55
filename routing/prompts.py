"""Turn an item and its task type into chat messages."""

from __future__ import annotations

from routing.config import TaskType
from routing.templates import render
from routing.types import Message

# Fields every item supplies; any other {name} in a template is one of the item's input fields.
BUILTIN_FIELDS = ("text", "labels")


def render_messages(
    task: TaskType, text: str, fields: dict[str, str] | None = None, feedback: str | None = None
) -> list[Message]:
    """The messages for one call. `feedback` is the rejected answer and why, when enabled.

    Raises TemplateError for a template outside the plain-{field} rule (a stored routing file
    edited in the ledger skips submit's check; the worker fails the item with the reason). A
    field the item lacks stays as written; submit refuses items that lack one.
    """
    values = {**(fields or {}), "text": text, "labels": ", ".join(task.labels)}
    messages = []
    if task.system_prompt:
        messages.append(Message(role="system", content=render(task.system_prompt, values)))
    content = render(task.prompt, values)
    if feedback:
        content += "\n\n" + feedback
    messages.append(Message(role="user", content=content))
    return messages


def missing_fields(task: TaskType, fields: dict[str, object]) -> list[str]:
    """The template fields an item with these input fields cannot fill."""
    return [f for f in task.template_fields() if f not in BUILTIN_FIELDS and f not in fields]
