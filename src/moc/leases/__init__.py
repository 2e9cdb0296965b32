"""Leases: bytes on a device for a time-to-live, granted, renewed, expired, revoked."""
