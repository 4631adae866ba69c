"""The dispatcher: durable task queue with leases, retries, priorities with aging, and long-poll claims.

Other packages talk to it only through ``messages.py``; the node wires ``DispatcherActor`` over a
``SqliteTaskStore``.
"""
