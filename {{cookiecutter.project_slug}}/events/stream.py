"""The text/event-stream a client reads: framing, heartbeats and the end of a stream."""

import asyncio
import json
import logging
from collections.abc import AsyncIterator

from django.conf import settings

from events.broker import Broker, BrokerUnavailable, Event, Reset

logger = logging.getLogger(__name__)


def frame(item: Event | Reset) -> str:
    if isinstance(item, Reset):
        return f"id: {item.id}\nevent: reset\ndata: {json.dumps({'reason': item.reason})}\n\n"
    return f"id: {item.id}\nevent: {item.name}\ndata: {item.data}\n\n"


async def event_stream(broker: Broker, last_event_id: str | None) -> AsyncIterator[str]:
    """Missed events, then live ones, until the client leaves or falls too far behind.

    Django cancels this generator when the client disconnects; leaving the
    `async with` then removes the subscription at once.
    """
    retry = f"retry: {settings.SSE_RETRY_MILLISECONDS}\n"
    try:
        async with broker.subscribe(last_event_id) as subscription:
            # Sets the client's last event id even before the first event, so
            # a reconnect resumes from here rather than from "now".
            yield f"{retry}id: {subscription.start}\n\n"
            while True:
                try:
                    async with asyncio.timeout(settings.SSE_HEARTBEAT_SECONDS):
                        batch = await subscription.next_batch()
                except TimeoutError:
                    # A comment line: keeps proxies from closing an idle stream.
                    yield ": keep-alive\n\n"
                    continue
                if not batch:  # dropped: the client reconnects and resumes
                    return
                yield "".join(map(frame, batch))
    except BrokerUnavailable as exc:
        logger.warning("Ended an event stream: the broker is unavailable (%s)", exc)
        # 200 and the end of the stream: EventSource retries after `retry`,
        # whereas an error status would make it give up for good.
        yield f"{retry}: the event broker is unavailable, reconnect later\n\n"
