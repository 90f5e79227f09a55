"""Turn an item and its task type into chat messages."""

from __future__ import annotations

from routing.config import TaskType
from routing.types import Message


class _Fields(dict):
    def __missing__(self, key: str) -> str:  # unknown {placeholders} stay as written
        return "{" + key + "}"


def render_messages(
    task: TaskType, text: str, fields: dict[str, str] | None = None, feedback: str | None = None
) -> list[Message]:
    """The messages for one call. `feedback` is the rejected answer and why, when enabled."""
    values = _Fields(fields or {})
    values["text"] = text
    values["labels"] = ", ".join(task.labels)
    messages = []
    if task.system_prompt:
        messages.append(Message(role="system", content=task.system_prompt.format_map(values)))
    content = task.prompt.format_map(values)
    if feedback:
        content += "\n\n" + feedback
    messages.append(Message(role="user", content=content))
    return messages
