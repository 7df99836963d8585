"""A 200 MB upload through the real HTTP server process streams: the server's peak resident
memory grows by far less than the file (no whole file in memory on the HTTP path)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from adx.settings import Settings
from contracts.file import FileStatus, FileUploadResult
from services.file.config import FileSettings
from services.file.keys import file_key
from services.file.service import file_service
from tests.services.file.support import bearer, member, new_tenant
from tests.support.servers import PostgresServer, create_database, free_port
from tests.support.services import running_service

SIZE = 200 * 1024 * 1024
CHUNK = 1024 * 1024
MAX_GROWTH = 50 * 1024 * 1024


def peak_rss(pid: int) -> int:
    """VmHWM (peak resident set size) of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


async def test_a_200_mb_upload_streams_with_bounded_server_memory(
    settings: Settings, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    service_settings = settings.model_copy(
        update={
            "data_dir": tmp_path,
            "database_url": create_database(postgres_server, f"file_{uuid.uuid4().hex[:12]}"),
        }
    )
    assert service_settings.temporal_address is not None
    assert service_settings.database_url is not None
    config = FileSettings.from_settings(service_settings)
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "ADX_ENVIRONMENT": "test",
        "ADX_TEMPORAL_ADDRESS": service_settings.temporal_address,
        "ADX_TEMPORAL_NAMESPACE": service_settings.temporal_namespace,
        "ADX_DATA_DIR": str(tmp_path),
        "ADX_DATABASE_URL": service_settings.database_url,
        "ADX_PORTS": json.dumps({"file": port}),
        "ADX_LOG_LEVEL": "WARNING",
    }
    owner = member(new_tenant("big"))
    headers = bearer(service_settings, owner)
    # The worker runs here; the HTTP server is its own process, measured from outside.
    async with running_service(file_service(config), service_settings, server=False) as running:
        log_path = tmp_path / "server.log"
        with log_path.open("ab") as log:
            server = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "adx", "service", "file", "server"),
                env=env,
                cwd=tmp_path,
                stdout=log,
                stderr=log,
            )
        try:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=120) as http:
                async with asyncio.timeout(30):
                    while True:
                        try:
                            if (await http.get("/readyz")).status_code == 200:
                                break
                        except httpx.TransportError:
                            pass
                        await asyncio.sleep(0.1)
                # A small upload first, so every code path of an upload is loaded.
                warm = await http.post(
                    "/api/file/uploads",
                    content=b"warm-up\n",
                    headers={**headers, "x-filename": "warm.txt", "content-type": "text/plain"},
                )
                assert warm.status_code == 202, warm.text
                before = peak_rss(server.pid)

                block = random.Random(7).randbytes(CHUNK)
                sent = hashlib.sha256()

                async def body() -> AsyncIterator[bytes]:
                    for index in range(SIZE // CHUNK):
                        chunk = index.to_bytes(8, "big") + block[8:]
                        sent.update(chunk)
                        yield chunk

                response = await http.post(
                    "/api/file/uploads",
                    content=body(),
                    headers={**headers, "x-filename": "big.bin"},
                )
                assert response.status_code == 202, response.text
                after = peak_rss(server.pid)
        finally:
            server.terminate()
            await server.wait()

        growth = after - before
        assert growth < MAX_GROWTH, f"server peak RSS grew by {growth / 2**20:.1f} MiB"

        ops = running.runtime.operations
        async with asyncio.timeout(90):
            await ops.result(owner, warm.json()["operation_id"], result_type=FileUploadResult)
            result = await ops.result(
                owner, response.json()["operation_id"], result_type=FileUploadResult
            )
        assert result.status is FileStatus.READY
        assert result.size_bytes == SIZE
        assert result.sha256 == sent.hexdigest()
        stored = config.storage_root / "local" / file_key(owner.tenant_id, result.file_id)
        assert stored.stat().st_size == SIZE
