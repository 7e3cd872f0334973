"""The coordinator: data from the node to business back ends (webhooks)."""
