"""Domain actors of orch (dispatcher, locks, monitor, security, notifier) and their shared storage layer."""
