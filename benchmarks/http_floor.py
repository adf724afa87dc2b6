"""The send floor in isolation (issue 13): how long a Python order request takes from the caller to the venue's
handler, with nothing else on the loop. An aiohttp server in another process (the fakes' stack) stamps when
each request reaches its handler and answers at once; this process sends one request at a time over a kept-alive
connection and takes (handler stamp - time before the call): the "send" stage of benchmarks/live_latency.py
without the engine around it.

    python benchmarks/http_floor.py [--n 500]

Three clients: aiohttp (what the venue clients use: ``ClientSession.request``, one session, keep-alive), the
Upbit client's signing added (JWT: SHA-512 query hash + HMAC), and a hand-written HTTP/1.1 request over one
asyncio stream (the floor of Python's event loop and a socket). Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

BODY = '{"market":"KRW-BTC","side":"bid","volume":"0.00729","price":"95000000","ord_type":"limit",' \
       '"time_in_force":"ioc","identifier":"al-latbench-17-BTC-ou"}'


async def _serve(port_out: Callable[[int], None]) -> None:
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        t = time.time_ns()
        await request.read()
        return web.Response(text=str(t))

    app = web.Application()
    app.router.add_post("/v1/orders", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port_out(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    await asyncio.Event().wait()


def _pct(xs: list[int], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] / 1e3


async def _measure(n: int, one: Callable[[], Awaitable[int]]) -> list[int]:
    for _ in range(20):  # warm: connection made, code paths hot
        await one()
    out = []
    for _ in range(n):
        t0 = time.time_ns()
        out.append(await one() - t0)
    return out


async def _clients(port: int, n: int) -> dict[str, list[int]]:
    import aiohttp

    from arbitrage_lite.infra.venues.upbit.auth import authorization

    url = f"http://127.0.0.1:{port}/v1/orders"
    params = list(json.loads(BODY).items())
    results: dict[str, list[int]] = {}
    async with aiohttp.ClientSession() as session:
        async def plain() -> int:
            async with session.post(url, data=BODY, headers={"Content-Type": "application/json"}) as r:
                return int(await r.text())

        async def signed() -> int:
            headers = authorization("access", "secret-key-of-forty-characters-000000000", params)
            headers["Content-Type"] = "application/json; charset=utf-8"
            async with session.post(url, data=BODY, headers=headers) as r:
                return int(await r.text())

        results["aiohttp"] = await _measure(n, plain)
        results["aiohttp+upbit_jwt"] = await _measure(n, signed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (f"POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(BODY)}\r\n\r\n{BODY}").encode()

    async def raw() -> int:
        writer.write(request)
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return int(await reader.readexactly(length))

    results["raw_asyncio_stream"] = await _measure(n, raw)
    writer.close()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--role", choices=("client", "server"), default="client", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "server":
        asyncio.run(_serve(lambda port: print(port, flush=True)))
        return
    server = subprocess.Popen([sys.executable, __file__, "--role", "server"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        results = asyncio.run(_clients(port, args.n))
    finally:
        server.terminate()
        server.wait(10)
    row: dict[str, object] = {"benchmark": "http_floor", "n": args.n}
    for name, xs in results.items():
        print(f"caller -> venue handler, {name:20} p50 {_pct(xs, 0.5):6.0f} us  p99 {_pct(xs, 0.99):6.0f} us")
        row[f"{name}_p50_us"], row[f"{name}_p99_us"] = round(_pct(xs, 0.5)), round(_pct(xs, 0.99))
    print(json.dumps(row))


if __name__ == "__main__":
    main()
