"""Group-commit statistics."""

from __future__ import annotations

from dataclasses import dataclass

from .batch import BatchResult


@dataclass(frozen=True, slots=True)
class DatabaseStats:
    """A snapshot of the writer's counters since the database was opened."""

    batches: int  # transactions attempted (one thread hop each)
    batches_failed: int  # of which did not commit (BEGIN/COMMIT failure, lost transaction)
    ops: int  # write ops that ran (committed or not)
    ops_failed: int  # ops whose caller got an exception (own error, or its batch failed)
    ops_withdrawn: int  # queued ops dropped because their caller was cancelled before they ran
    queued: int  # ops waiting for the next batch right now
    max_batch_size: int
    last_batch_size: int
    last_commit_duration: float  # seconds the writer thread spent on the last batch, BEGIN to COMMIT
    total_commit_duration: float
    events_published: int
    checkpoints: int = 0  # WAL checkpoints run by the checkpointer (off the commit path)
    checkpoint_pauses: int = 0  # of which ran between two batches (to restart or truncate the WAL)
    checkpoint_failures: int = 0
    wal_frames: int = 0  # frames in the WAL after the last checkpoint

    @property
    def ops_per_batch(self) -> float:
        """Mean number of ops per batch (0.0 before the first batch)."""
        return self.ops / self.batches if self.batches else 0.0


class StatsCounter:
    """The mutable counters behind `DatabaseStats` (Trio thread only)."""

    def __init__(self) -> None:
        self.batches = 0
        self.batches_failed = 0
        self.ops = 0
        self.ops_failed = 0
        self.ops_withdrawn = 0
        self.queued = 0
        self.max_batch_size = 0
        self.last_batch_size = 0
        self.last_commit_duration = 0.0
        self.total_commit_duration = 0.0
        self.events_published = 0

    def record_batch(self, size: int, result: BatchResult) -> None:
        """Account for one finished batch."""
        self.batches += 1
        self.ops += size
        if result.error is None:
            self.ops_failed += result.failed_ops
        else:
            self.batches_failed += 1
            self.ops_failed += size
        self.max_batch_size = max(self.max_batch_size, size)
        self.last_batch_size = size
        self.last_commit_duration = result.duration
        self.total_commit_duration += result.duration

    def snapshot(self, checkpoints: int, pauses: int, failures: int, wal_frames: int) -> DatabaseStats:
        """Freeze the current values (plus the checkpointer's counters)."""
        return DatabaseStats(
            batches=self.batches,
            batches_failed=self.batches_failed,
            ops=self.ops,
            ops_failed=self.ops_failed,
            ops_withdrawn=self.ops_withdrawn,
            queued=self.queued,
            max_batch_size=self.max_batch_size,
            last_batch_size=self.last_batch_size,
            last_commit_duration=self.last_commit_duration,
            total_commit_duration=self.total_commit_duration,
            events_published=self.events_published,
            checkpoints=checkpoints,
            checkpoint_pauses=pauses,
            checkpoint_failures=failures,
            wal_frames=wal_frames,
        )
