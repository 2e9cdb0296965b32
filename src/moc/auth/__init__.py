"""Who is asking and what they may do: API keys, JWT, roles and the route
table, per-key limits and device quotas, and the audit log."""
