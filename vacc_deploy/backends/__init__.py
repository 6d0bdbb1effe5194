"""Backends that run a built model. Plain registry; nothing of a vendor SDK is imported here."""
