"""The lock manager: leases with fencing tokens, fair wait queues (priority with aging, then FIFO), TTL.

Other packages talk to it through ``actors.locks.messages`` only; ``LockManager`` (``actor.py``) is wired
by the node. ``table.py`` is the pure in-memory core, ``store.py`` its persistence.
"""
