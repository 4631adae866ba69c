"""The security actor: users, passwords, JWT, roles, lockout, rate limits, webhook signatures, audit trail.

Other packages talk to it through `actors.security.messages` only.
"""
