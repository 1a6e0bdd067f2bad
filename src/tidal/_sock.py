"""Placeholder: sock_* coroutines (being written)."""
# ruff: noqa
async def sock_recv(self, sock, n): raise NotImplementedError
async def sock_recv_into(self, sock, buf): raise NotImplementedError
async def sock_recvfrom(self, sock, bufsize): raise NotImplementedError
async def sock_recvfrom_into(self, sock, buf, nbytes=0): raise NotImplementedError
async def sock_sendall(self, sock, data): raise NotImplementedError
async def sock_sendto(self, sock, data, address): raise NotImplementedError
async def sock_connect(self, sock, address): raise NotImplementedError
async def sock_accept(self, sock): raise NotImplementedError
