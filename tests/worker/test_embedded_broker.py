"""The embedded broker writes a message under a name no consumer reads, then renames it: a
consumer never sees a half-written message (kombu's own transport let a worker read one empty
and die with JSONDecodeError under load)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from kombu import Connection

from worker import embedded_broker


def test_a_message_file_appears_only_once_it_is_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedded_broker.install()
    folder = str(tmp_path)
    options = {"data_folder_in": folder, "data_folder_out": folder, "control_folder": folder}
    seen_at_rename: list[tuple[list[str], dict]] = []
    real_replace = os.replace

    def watching_replace(src: str, dst: str) -> None:
        visible = [name for name in os.listdir(folder) if name.endswith(".tier0.msg")]
        seen_at_rename.append((visible, json.loads(Path(src).read_text())))
        real_replace(src, dst)

    monkeypatch.setattr(embedded_broker.os, "replace", watching_replace)
    with Connection("filesystem://", transport_options=options) as connection:
        channel = connection.default_channel
        assert isinstance(channel, embedded_broker.Channel)
        channel._put("tier0", {"body": "ids only", "n": 1})
        assert seen_at_rename == [([], {"body": "ids only", "n": 1})]  # complete, not yet visible
        assert channel._get("tier0") == {"body": "ids only", "n": 1}
