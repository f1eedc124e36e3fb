"""Imported only by tests/test_routes.py, to show route handlers load on first use."""


async def handler(ctx, gw):
    return None
