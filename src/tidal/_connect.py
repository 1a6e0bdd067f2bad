"""Placeholder: create_connection & co (being written)."""
# ruff: noqa
async def create_connection(self, *a, **k): raise NotImplementedError
async def create_unix_connection(self, *a, **k): raise NotImplementedError
async def connect_accepted_socket(self, *a, **k): raise NotImplementedError
