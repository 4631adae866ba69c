"""The security actor's in-memory state and the synchronous checks of the hot path.

The actor owns one `SecurityState`. Every check here is synchronous and cheap (dict lookups plus, on a
cache miss, one signature verification), which is what lets `Authorize` stay well under 100 us.
Memory is authoritative for this process: a change is applied here first (effective at once), then
committed (durable before the asker is answered). `merge` folds in changes another process (the CLI)
made to the same database, without ever undoing a revocation.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

from actors.security.messages import Unauthenticated
from actors.security.roles import Role
from actors.security.settings import SecuritySettings
from actors.security.store import Family, Revocation, Snapshot, SystemTokenRecord, UserRecord
from actors.security.tokens import TokenClaims, TokenCodec, TokenInvalid, TokenType

API_TOKENS = frozenset({TokenType.ACCESS, TokenType.SYSTEM})
REFRESH_TOKENS = frozenset({TokenType.REFRESH})


@dataclass(frozen=True, slots=True)
class Caller:
    """A verified caller: its claims, its effective role and whether it is a user or a system principal."""

    claims: TokenClaims
    role: Role
    kind: str


class SecurityState:
    """Users, revocations, refresh families, system tokens, and a cache of verified token signatures."""

    def __init__(self, settings: SecuritySettings) -> None:
        self.settings = settings
        self.codec = TokenCodec(settings)
        self.users: dict[str, UserRecord] = {}
        self.revocations: dict[str, Revocation] = {}
        self.families: dict[str, Family] = {}
        self.system_tokens: dict[str, SystemTokenRecord] = {}
        # OrderedDict: popitem(last=False) is O(1); next(iter(dict)) after many front deletions is O(n).
        self._verified: OrderedDict[str, TokenClaims] = OrderedDict()
        self._cache_size = settings.token_cache_size

    # ------------------------------------------------------------------------------------------ loading
    def merge(self, snap: Snapshot) -> None:
        """Fold in the stored state: newer user versions win, revocations only ever accumulate."""
        for name, row in snap.users.items():
            mine = self.users.get(name)
            if mine is None or row.version > mine.version:
                self.users[name] = row
        for jti, rev in snap.revocations.items():
            self.revocations.setdefault(jti, rev)
        for fid, fam in snap.families.items():
            mine_f = self.families.get(fid)
            if mine_f is None:
                self.families[fid] = fam
            elif fam.revoked_at is not None and mine_f.revoked_at is None:
                self.families[fid] = replace(mine_f, revoked_at=fam.revoked_at)
        for jti, tok in snap.system_tokens.items():
            mine_t = self.system_tokens.get(jti)
            if mine_t is None or (tok.revoked_at is not None and mine_t.revoked_at is None):
                self.system_tokens[jti] = tok

    def forget_expired(self, now: float) -> None:
        """Drop revocations, families and system tokens past their expiry."""
        self.revocations = {k: v for k, v in self.revocations.items() if v.expires_at >= now}
        self.families = {k: v for k, v in self.families.items() if v.expires_at >= now}
        self.system_tokens = {k: v for k, v in self.system_tokens.items() if v.expires_at >= now}

    # ------------------------------------------------------------------------------------------ checks
    def claims(self, token: str, *, now: float, expected: frozenset[TokenType]) -> TokenClaims:
        """Verified claims of `token` (signature cached, times and typ always re-checked)."""
        try:
            claims = self._verified.get(token)
            if claims is None:
                claims = self.codec.verify_signature(token, now=now)
                if len(self._verified) >= self._cache_size:
                    self._verified.popitem(last=False)
                self._verified[token] = claims
            self.codec.check(claims, now=now, expected=expected)
        except TokenInvalid as exc:
            raise Unauthenticated(f"invalid token: {exc.reason}") from None
        return claims

    def is_cached(self, token: str) -> bool:
        """True when `token`'s signature was verified recently (no crypto needed to check it again)."""
        return token in self._verified

    def caller(self, token: str | None, now: float) -> Caller:
        """Who presents `token` for an API call; Unauthenticated if it is invalid or revoked."""
        if not token:
            raise Unauthenticated("missing bearer token")
        claims = self.claims(token, now=now, expected=API_TOKENS)
        if claims.jti in self.revocations:
            raise Unauthenticated("token revoked")
        if claims.typ is TokenType.SYSTEM:
            record = self.system_tokens.get(claims.jti)
            if record is None or record.revoked_at is not None:
                raise Unauthenticated("token revoked")
            return Caller(claims, Role.SYSTEM, "system")
        self.check_user(claims)
        return Caller(claims, claims.role, "user")

    def check_user(self, claims: TokenClaims) -> UserRecord:
        """The user behind a user token, if it still exists, is enabled, and did not revoke the token."""
        user = self.users.get(claims.sub)
        if user is None or user.disabled:
            raise Unauthenticated("account unavailable")
        if claims.iat < user.tokens_valid_after:
            raise Unauthenticated("token revoked")
        if claims.role != user.role:  # role changes also bump tokens_valid_after; belt and braces
            raise Unauthenticated("token revoked")
        return user

    def is_revoked_jti(self, jti: str) -> bool:
        """True if `jti` was revoked."""
        return jti in self.revocations
