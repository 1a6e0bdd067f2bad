"""Placeholder: datagram transport & create_datagram_endpoint (being written)."""
# ruff: noqa
async def create_datagram_endpoint(self, *a, **k): raise NotImplementedError
