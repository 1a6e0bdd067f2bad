"""Placeholder: create_server & Server (being written)."""
# ruff: noqa
async def create_server(self, *a, **k): raise NotImplementedError
async def create_unix_server(self, *a, **k): raise NotImplementedError
