"""Live event feeds: the node's event hub (a Broadcast of every committed event, in seq order) and the
endpoints that follow it - `GET /sse/events`, `WS /ws/events` - plus `WS /ws/dispatch` for high-rate task
operations over one connection.

    hub = attach_feeds(node)                 # open_node does this: hub.publish becomes an event sink
    with hub.open_feed(EventFilter.parse(types="task."), after=120) as feed:
        batch = await feed.next_batch()      # replay from the store, then live: no gap, no duplicate

The routes live in `orch.feeds.routes` (imported by the app factory, not here, to keep this light).
"""

from orch.feeds.feed import EventFeed, FeedEnded, FeedLagged
from orch.feeds.filters import EventFilter
from orch.feeds.gc_tuning import GcTuning, apply_gc_tuning
from orch.feeds.hub import FeedHub, attach_feeds
from orch.feeds.metrics import FeedMetrics, Transport

__all__ = [
    "EventFeed",
    "EventFilter",
    "FeedEnded",
    "FeedHub",
    "FeedLagged",
    "FeedMetrics",
    "GcTuning",
    "Transport",
    "apply_gc_tuning",
    "attach_feeds",
]
