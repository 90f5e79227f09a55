"""The embedded broker (`filesystem://`): kombu's filesystem transport, with atomic puts.

kombu's transport creates a message's file under its final name and then writes it, while a
consumer may already have moved that file away and read it empty: the consumer's worker dies
with "Unrecoverable error: JSONDecodeError" (seen under load with `make demo`). Here a message
is written under a name no consumer looks at, then renamed into place, which is atomic within
one folder. Everything else is kombu's.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".writing"  # not `<queue>.msg`: consumers skip it
        try:
            with open(partial, "wb") as out:
                out.write(dumps(payload).encode())
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def install() -> None:
    """Make `filesystem://` URLs use this transport in this process."""
    TRANSPORT_ALIASES["filesystem"] = "worker.embedded_broker:Transport"
