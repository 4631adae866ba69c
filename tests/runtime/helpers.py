"""Small actors shared by the runtime tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from runtime import Actor, DomainError, Reply


class Refused(DomainError):
    """A domain error the echo actor answers with."""


@dataclass(frozen=True, slots=True)
class Echo:
    value: int
    reply: Reply[int]


@dataclass(frozen=True, slots=True)
class Crash:
    reply: Reply[int] | None = None


@dataclass(frozen=True, slots=True)
class Hold:
    """Keep the reply without answering (a deferred reply)."""

    reply: Reply[int]


@dataclass(frozen=True, slots=True)
class Block:
    """Handle slowly: sleep ``seconds`` before answering."""

    seconds: float
    reply: Reply[int]


@dataclass(frozen=True, slots=True)
class Exit:
    """Stop normally after this message."""


Msg = Echo | Crash | Hold | Block | Exit


@dataclass
class Journal:
    """What every incarnation of the test actors did, in order."""

    entries: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[str]:
        return [e.split(":", 1)[1] for e in self.entries if e.startswith(kind + ":")]


class EchoActor(Actor[Msg]):
    """Echoes, crashes, holds or exits on request; records its life in a journal."""

    def __init__(
        self,
        name: str = "echo",
        journal: Journal | None = None,
        *,
        fail_start: bool = False,
        stop_delay: float = 0.0,
    ) -> None:
        self.name = name
        self.journal = journal or Journal()
        self.fail_start = fail_start
        self.stop_delay = stop_delay
        self.held: list[Reply[int]] = []

    async def on_start(self) -> None:
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.journal.entries.append(f"start:{self.name}")

    async def on_stop(self) -> None:
        if self.stop_delay:
            await trio.sleep(self.stop_delay)
        self.journal.entries.append(f"stop:{self.name}")

    async def handle(self, message: Msg) -> None:
        match message:
            case Echo(value=value, reply=reply):
                if value < 0:
                    raise Refused(f"negative: {value}")
                self.journal.entries.append(f"echo:{self.name}={value}")
                reply.send(value)
            case Crash():
                self.journal.entries.append(f"crash:{self.name}")
                raise RuntimeError(f"{self.name} was told to crash")
            case Hold(reply=reply):
                self.held.append(reply)
            case Block(seconds=seconds, reply=reply):
                await trio.sleep(seconds)
                reply.send(int(seconds))
            case Exit():
                self.stop()
