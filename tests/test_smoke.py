import asyncio


def test_call_soon_order(loop, arun):
    seen = []

    async def main():
        for i in range(5):
            loop.call_soon(seen.append, i)
        await asyncio.sleep(0)
        return seen

    assert arun(main()) == [0, 1, 2, 3, 4]
