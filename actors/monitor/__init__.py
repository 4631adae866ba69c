"""The monitor actor: metrics history, EWMA anomaly detection, alert rules, self-healing, notifications."""
