"""Redis topologies for the tests, from the plain ``redis-server`` binary: Sentinel and Cluster.

``SentinelSet`` runs a master, one replica and three Sentinels; ``LocalCluster`` runs three
masters with ``--cluster-enabled yes`` and assigns the 16,384 slots itself (CLUSTER ADDSLOTS
and MEET through redis-py, so no ``redis-cli`` is needed). Each process runs in its own
process group and is killed when the topology stops.
"""

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis
from local_redis import answers, free_port, redis_server_binary

SERVICE = "mymaster"


def _start(args, data_dir, port):
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [redis_server_binary(), *args],
        cwd=data_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while not answers("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            _kill(process)
            raise RuntimeError(f"redis-server {' '.join(args)} did not start")
        time.sleep(0.05)
    return process


def _kill(process):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _free_cluster_port():
    """A port below 55536 whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        port = random.randint(20000, 30000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of ports for a cluster node")


def _node_args(port, data_dir, *extra):
    return [
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--dir",
        str(data_dir),
        *extra,
    ]


class SentinelSet:
    """A master, a replica and three Sentinels watching them as ``mymaster``."""

    def __init__(self, base_dir):
        base = Path(base_dir)
        self.processes = {}
        self.master_port, self.replica_port = free_port(), free_port()
        self.processes["master"] = _start(
            _node_args(self.master_port, base / "master"), base / "master", self.master_port
        )
        self.processes["replica"] = _start(
            _node_args(
                self.replica_port,
                base / "replica",
                "--replicaof",
                "127.0.0.1",
                str(self.master_port),
            ),
            base / "replica",
            self.replica_port,
        )
        self.sentinel_ports = [free_port() for _ in range(3)]
        for index, port in enumerate(self.sentinel_ports):
            folder = base / f"sentinel{index}"
            folder.mkdir(parents=True, exist_ok=True)
            conf = folder / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            self.processes[f"sentinel{index}"] = _start([str(conf), "--sentinel"], folder, port)
        self.wait_until_synced()

    def url(self, db=0):
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/{db}"

    def master_address(self):
        sentinel = redis.Redis(port=self.sentinel_ports[0], socket_timeout=1)
        host, port = sentinel.execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)
        return host.decode(), int(port)

    def wait_until_synced(self, timeout=20):
        replica = redis.Redis(port=self.replica_port, socket_timeout=1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = replica.info("replication")
            sentinels = redis.Redis(port=self.sentinel_ports[0], socket_timeout=1)
            known = sentinels.execute_command("SENTINEL", "replicas", SERVICE)
            if info.get("master_link_status") == "up" and known:
                return
            time.sleep(0.1)
        raise RuntimeError("the replica or the Sentinels never caught up")

    def kill_master(self):
        _kill(self.processes.pop("master"))

    def wait_for_failover(self, timeout=30):
        """The port of the new master once the Sentinels have promoted the replica."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if self.master_address()[1] == self.replica_port:
                    role = redis.Redis(port=self.replica_port, socket_timeout=1).role()[0]
                    if role in (b"master", "master"):
                        return self.replica_port
            time.sleep(0.2)
        raise RuntimeError("no failover within the deadline")

    def stop(self):
        for process in self.processes.values():
            _kill(process)
        self.processes.clear()


class LocalCluster:
    """Three Redis Cluster masters on this machine, the slots split between them."""

    SLOTS = 16384

    def __init__(self, base_dir, nodes=3):
        base = Path(base_dir)
        self.ports = [_free_cluster_port() for _ in range(nodes)]
        self.processes = []
        for port in self.ports:
            folder = base / f"node{port}"
            self.processes.append(
                _start(
                    _node_args(
                        port,
                        folder,
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        f"nodes-{port}.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ),
                    folder,
                    port,
                )
            )
        self._form()

    def _form(self):
        clients = [redis.Redis(port=port, socket_timeout=2) for port in self.ports]
        share = self.SLOTS // len(clients)
        for index, client in enumerate(clients):
            last = self.SLOTS if index == len(clients) - 1 else (index + 1) * share
            client.execute_command("CLUSTER", "ADDSLOTS", *range(index * share, last))
        for port in self.ports[1:]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = [client.cluster("info")["cluster_state"] for client in clients]
            if all(state == "ok" for state in states):
                return
            time.sleep(0.1)
        raise RuntimeError("the cluster never reached cluster_state:ok")

    def url(self):
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def stop(self):
        for process in self.processes:
            _kill(process)
        self.processes.clear()
