"""One subscriber's event feed: replay from the store after a seq, then live from the Broadcast, with no gap
and no duplicate.

The seam between replay and live is the delicate part. The feed first catches up from the store without a
subscription (so a long replay never fills a live buffer). When a page comes back short it subscribes, then
reads the store once more: every event committed before the subscription existed is in that read, every
event published after it is in the subscription, and events in both are dropped by seq (`cursor`). Events
are published in seq order after their commit, so nothing can fall between the two.

`next_batch` is cancel-safe (a heartbeat deadline around it loses nothing): the cursor moves only when a
read has returned, and the Broadcast's `receive_batch` is cancel-safe itself.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence

import trio

from actors.storage import Database, StoredEvent
from orch.feeds.filters import EventFilter
from runtime import Broadcast, Lagged, Subscription

__all__ = ["EventFeed", "FeedEnded", "FeedLagged"]


class FeedLagged(Exception):
    """The subscriber fell behind and was cut off; resume after `last_seq` (events up to it were handed out
    or filtered out)."""

    def __init__(self, last_seq: int) -> None:
        super().__init__(f"fell behind and was cut off; resume after seq {last_seq}")
        self.last_seq = last_seq


class FeedEnded(Exception):
    """The Broadcast closed (the node is shutting down); resume after `last_seq` elsewhere or later."""

    def __init__(self, last_seq: int) -> None:
        super().__init__(f"feed ended (node shutting down); resume after seq {last_seq}")
        self.last_seq = last_seq


class _Phase(enum.Enum):
    CATCH_UP = "catch_up"  # paging through the store, not subscribed
    SEAM = "seam"  # subscribed; one more store read covers what was committed before subscribing
    LIVE = "live"


class EventFeed:
    """Events matching `filter` with seq > `after` (or, if `after` is None, from now on), in seq order.

    A feed "from now on" starts after `live_from`, the last seq published before it subscribed, so its
    `cursor` is a valid resume point from the start.
    """

    def __init__(
        self,
        broadcast: Broadcast[StoredEvent],
        database: Callable[[], Database],
        filter: EventFilter,
        *,
        after: int | None,
        page: int,
        capacity: int,
        live_from: int = 0,
    ) -> None:
        self._broadcast = broadcast
        self._database = database
        self.filter = filter
        self._page = page
        self._capacity = capacity
        self._sub: Subscription[StoredEvent] | None = None
        self._phase = _Phase.CATCH_UP if after is not None else _Phase.LIVE
        self.cursor = after if after is not None else live_from
        """Highest seq handed out or skipped; a client resuming after it misses nothing."""
        if after is None:
            self._subscribe()

    @property
    def live(self) -> bool:
        """True once the replay has caught up (from then on events come from the Broadcast)."""
        return self._phase is _Phase.LIVE

    async def next_batch(self) -> Sequence[StoredEvent]:
        """The next batch, oldest first: never empty, except once when the replay has caught up and the
        feed goes live (so a client can be told "you are now live"). Raises `FeedLagged` or `FeedEnded`."""
        while True:
            if self._phase is _Phase.LIVE:
                batch = await self._live()
            else:
                batch = await self._replay()
                if self.live:  # just caught up: say so, even with nothing new
                    return batch
            if batch:
                return batch

    async def pending_live(self) -> Sequence[StoredEvent]:
        """The live events already waiting, without waiting for more (empty when none, or not live yet).

        For coalescing: after a wake-up, a writer may pause and then take what arrived meanwhile, so one
        write carries several events. A cut-off or an end is not raised here: the next `next_batch` does.
        """
        sub = self._sub
        if self._phase is not _Phase.LIVE or sub is None or not sub.pending:
            return ()
        return await self._live()

    def close(self) -> None:
        """Release the subscription (idempotent)."""
        if self._sub is not None:
            self._sub.close()
            self._sub = None

    def __enter__(self) -> EventFeed:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- phases ----------------------------------------------------------------------------------------------
    async def _replay(self) -> list[StoredEvent]:
        if self._broadcast.closed:
            raise FeedEnded(self.cursor)
        f = self.filter
        rows = await self._database().events_after(
            self.cursor, limit=self._page, topics=f.store_topics(), subject=f.task_id, core_id=f.core_id
        )
        # No await between the read returning and the cursor moving: cancellation cannot lose rows.
        if rows:
            self.cursor = rows[-1].seq
        caught_up = len(rows) < self._page
        if self._phase is _Phase.CATCH_UP and caught_up:
            self._subscribe()
            self._phase = _Phase.SEAM
        elif self._phase is _Phase.SEAM:
            if caught_up:
                self._phase = _Phase.LIVE
            else:
                # More than a page arrived since the catch-up read: drop the live buffer rather than let
                # it fill while the rest is paged out of the store.
                self.close()
                self._phase = _Phase.CATCH_UP
        return [e for e in rows if f.matches(e)]

    async def _live(self) -> list[StoredEvent]:
        sub = self._sub
        if sub is None:
            raise FeedEnded(self.cursor)
        try:
            batch = await sub.receive_batch()
        except Lagged:
            self.close()
            raise FeedLagged(self.cursor) from None
        except (trio.EndOfChannel, trio.ClosedResourceError):
            self.close()
            raise FeedEnded(self.cursor) from None
        cursor, matches = self.cursor, self.filter.matches
        fresh = [e for e in batch if e.seq > cursor and matches(e)]
        if batch[-1].seq > cursor:
            self.cursor = batch[-1].seq
        return fresh

    def _subscribe(self) -> None:
        try:
            self._sub = self._broadcast.subscribe(self.filter.patterns(), capacity=self._capacity)
        except trio.ClosedResourceError:
            raise FeedEnded(self.cursor) from None
