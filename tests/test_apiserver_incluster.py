"""Lab API server: a pod's exact path (in-cluster config) and the ``python -m lab.apiserver`` process.

- lightkube's ``KubeConfig.from_env()`` reads the mounted token, ``ca.crt`` and ``namespace``
  and ``KUBERNETES_SERVICE_HOST``/``PORT``, and connects unchanged;
- as root: the server runs as a process; a child in its own mount namespace gets the files at
  the real ``/var/run/secrets/kubernetes.io/serviceaccount`` (a private tmpfs: nothing is
  visible outside) and calls ``KubeConfig.from_env()`` with no argument, as a pod does; the
  socket appears only when the server is ready, and SIGTERM stops it and removes it.
"""

# ruff: noqa: F811  (pytest fixtures imported from tests.apiserver_support are redefined as arguments)
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.resources.core_v1 import Service

from lab.apiserver import AdminClient, ApiServer
from lab.manifests import service
from lab.waiting import wait_for
from tests.apiserver_support import admin, apiserver, service_account_rbac  # noqa: F401

READ_SERVICES = [{"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]}]


def mount_account(directory: Path, token: str, ca: Path, namespace: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text(token)
    (directory / "namespace").write_text(namespace)
    shutil.copy(ca, directory / "ca.crt")


async def test_lightkube_in_cluster_config_connects_with_a_minted_token(
    apiserver: ApiServer, admin: AdminClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await admin.load([*service_account_rbac("default", "agent", READ_SERVICES), service("web")])
    with tempfile.TemporaryDirectory(prefix="ilb-sa-") as tmp:
        account = Path(tmp) / "serviceaccount"
        mount_account(account, await admin.token("default", "agent"), apiserver.ca_file, "default")
        host, port = apiserver.addresses[0]
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(port))
        client = AsyncClient(KubeConfig.from_env(service_account=account), trust_env=False)
        try:
            names = [
                s.metadata and s.metadata.name async for s in client.list(Service)
            ]  # the config's namespace
        finally:
            await client.close()
    assert names == ["web"]
    reads = [r for r in apiserver.report()["requests"] if r["user"] == "system:serviceaccount:default:agent"]
    assert [(r["verb"], r["resource"], r["codes"]) for r in reads] == [("list", "services", {"200": 1})]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


POD = textwrap.dedent(
    """
    import asyncio
    from lightkube import AsyncClient
    from lightkube.config.kubeconfig import KubeConfig
    from lightkube.resources.core_v1 import Service

    async def main():
        client = AsyncClient(KubeConfig.from_env(), trust_env=False)
        print([s.metadata and s.metadata.name async for s in client.list(Service)])
        await client.close()

    asyncio.run(main())
    """
)


@pytest.mark.lab
def test_the_server_process_and_a_pod_reading_the_real_mount_path() -> None:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    work = Path(tempfile.mkdtemp(prefix="ilb-api-"))
    port = _free_port()
    sock = work / "api.sock"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lab.apiserver",
            "--listen",
            f"127.0.0.1:{port}",
            "--socket",
            str(sock),
            "--pki-dir",
            str(work / "pki"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(
            "the API server's admin socket",
            sock.exists,
            timeout=30,
            abort=lambda: None if server.poll() is None else f"exited: {server.communicate()[0]}",
        )
        token = asyncio.run(_prepare(sock))
        mount_account(work / "account", token, work / "pki" / "ca.crt", "default")
        script = (
            "set -e; mount --make-rprivate /; mount -t tmpfs tmpfs /run; "
            "mkdir -p /run/secrets/kubernetes.io; "
            f"cp -r {work / 'account'} /run/secrets/kubernetes.io/serviceaccount; "
            f'exec {sys.executable} -c "$POD"'
        )
        env = {
            **os.environ,
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(port),
            "POD": POD,
        }
        pod = subprocess.run(
            ["unshare", "-m", "sh", "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).parent.parent,
        )
        assert pod.returncode == 0, pod.stderr
        assert pod.stdout.strip() == "['web']"
        assert not Path("/run/secrets/kubernetes.io/serviceaccount/token").exists()  # stayed private
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0
        assert not sock.exists()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


async def _prepare(sock: Path) -> str:
    async with AdminClient(sock) as client:
        await client.load([*service_account_rbac("default", "agent", READ_SERVICES), service("web")])
        return await client.token("default", "agent")
