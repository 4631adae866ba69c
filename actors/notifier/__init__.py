"""The notifier actor: outbound delivery to Slack, signed webhooks and email, with retries."""
