"""worker/kombu_fixes.py: closing a broker channel whose connection Redis's restart tore down
must not raise (kombu's unguarded AttributeError made Celery end the worker process)."""

from __future__ import annotations

import logging

import kombu
import pytest

import worker.app  # noqa: F401 - installs the fix, as every worker process does
from worker import kombu_fixes


@pytest.mark.redis
def test_a_channel_closed_after_its_transport_keeps_the_worker_alive(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    connection = kombu.Connection(redis_url)
    channel = connection.default_channel
    channel.qos._delivered["tag-1"] = object()  # received, not acknowledged
    connection._do_close_transport()  # what the race leaves behind
    with caplog.at_level(logging.WARNING, logger="batchrouter.worker"):
        channel.close()  # kombu alone: AttributeError: 'NoneType' ... 'hostname'
    assert "1 received, unacknowledged messages not put back" in caplog.text
    assert not channel.qos._delivered


@pytest.mark.redis
def test_a_live_channel_still_puts_its_messages_back(redis_url: str) -> None:
    """The fix steps aside while the connection is alive: a warm shutdown restores as before."""
    kombu_fixes.install()
    with kombu.Connection(redis_url) as connection:
        queue = kombu.Queue("kombu-fix-test", routing_key="kombu-fix-test")
        with connection.Producer() as producer:
            producer.publish({"n": 1}, routing_key="kombu-fix-test", declare=[queue])
        channel = connection.channel()
        message = queue(channel).get(no_ack=False)
        assert message is not None
        channel.close()  # not acknowledged: kombu puts it back on the queue
        again = queue(connection.channel()).get(no_ack=True)
        assert again is not None and again.payload == {"n": 1}
