"""A proxy in front of the real API server whose applies of Deployments and PodDisruptionBudgets take a
while, one at a time, as on a busy API server, so a kill lands in the middle of a reconcile however fast
the operator issues them. The object itself is written at once; only the answer is slow. The operator
talks plain HTTP to it; the proxy talks to the server as the admin."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.support.control_plane import Server
from tests.support.redis_server import free_port

SLOW_KINDS = ("/deployments/", "/poddisruptionbudgets/")


class SlowApi:
    def __init__(self, server: Server, delay: float = 0.4) -> None:
        self.server, self.delay = server, delay
        self.port = free_port()
        self.writing = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: slow\n"
            f"clusters: [{{name: slow, cluster: {{server: 'http://127.0.0.1:{self.port}'}}}}]\n"
            "users: [{name: anyone, user: {}}]\n"
            "contexts: [{name: slow, context: {cluster: slow, user: anyone}}]\n"
        )
        return path

    async def __aenter__(self) -> SlowApi:
        pki = self.server.plane.pki_dir
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context), timeout=aiohttp.ClientTimeout(total=None)
        )
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # shutdown_timeout: watch streams stay open until the end; they are cut, not waited for
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "accept")}
        slow = (
            request.method == "PATCH"
            and "apply-patch" in request.headers.get("Content-Type", "")
            and any(kind in request.path for kind in SLOW_KINDS)
            and not request.path.endswith("/scale")
        )
        url = self.server.plane.server + request.path_qs
        if slow:  # one at a time: written at once, answered after the delay
            async with self.writing:
                async with self._session.request(request.method, url, data=body, headers=headers) as upstream:
                    payload = await upstream.read()
                    status, content_type = upstream.status, upstream.content_type
                await asyncio.sleep(self.delay)
            return web.Response(status=status, body=payload, content_type=content_type)
        async with self._session.request(request.method, url, data=body or None, headers=headers) as upstream:
            response = web.StreamResponse(status=upstream.status)
            response.content_type = upstream.content_type
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
