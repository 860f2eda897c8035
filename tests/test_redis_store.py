"""DirectScript, the flash sale's hot-path Lua runner, against the test session's real Redis."""

import os
import socket
import struct
import threading
import time

import pytest
import redis
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from luffy.redis_store import DirectScript

ECHO = "redis.call('INCR', KEYS[1]) return {ARGV[1], redis.call('GET', KEYS[1])}"


@pytest.fixture
def client(app):
    return redis.Redis.from_url(
        app.config["REDIS_URL"], socket_timeout=0.5, socket_connect_timeout=0.5
    )


def test_runs_the_script_and_reuses_one_connection(client):
    script = DirectScript(client, ECHO)
    assert script(keys=["luffy:test:n"], args=["a"]) == [b"a", b"1"]
    assert script(keys=["luffy:test:n"], args=["b"]) == [b"b", b"2"]
    assert len(script._idle) == 1
    script.close()


def test_loads_the_script_again_after_a_script_flush(client):
    script = DirectScript(client, ECHO)
    script(keys=["luffy:test:n"], args=["a"])
    client.script_flush()
    assert script(keys=["luffy:test:n"], args=["b"]) == [b"b", b"2"]
    assert client.script_exists(script.sha) == [True]
    script.close()


def test_an_error_reply_keeps_the_connection(client):
    script = DirectScript(client, "return redis.call('INCR', KEYS[1])")
    client.set("luffy:test:text", "not a number")
    with pytest.raises(ResponseError):
        script(keys=["luffy:test:text"])
    assert len(script._idle) == 1
    assert script(keys=["luffy:test:n"]) == 1  # the same connection, still in step
    script.close()


def test_an_idle_connection_the_server_closed_is_replaced_at_once(client):
    # After a Redis restart (or a proxy's idle timeout) every idle connection is dead: the call
    # that finds one runs the script on a new connection, once, and the other idle ones go.
    script = DirectScript(client, ECHO)
    results = []
    both = threading.Barrier(2)

    def two_at_once():
        both.wait()
        results.append(script(keys=["luffy:test:n"], args=["a"]))

    threads = [threading.Thread(target=two_at_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(script._idle) in (1, 2) and len(results) == 2
    for entry in client.client_list():
        if entry["cmd"] in ("evalsha", "eval"):
            client.client_kill_filter(_id=entry["id"])
    assert script(keys=["luffy:test:n"], args=["b"]) == [
        b"b",
        b"3",
    ]  # ran once, on a new connection
    assert len(script._idle) == 1  # the other dead one was dropped, not kept for the next caller
    assert script(keys=["luffy:test:n"], args=["c"]) == [b"c", b"4"]
    script.close()


def test_a_server_that_refuses_fails_at_once_without_retrying():
    port = socket.create_server(("127.0.0.1", 0))
    address = port.getsockname()
    port.close()  # nobody listens there now
    refused = redis.Redis(
        host=address[0], port=address[1], socket_timeout=0.3, socket_connect_timeout=0.3
    )
    script = DirectScript(refused, ECHO)
    started = time.monotonic()
    with pytest.raises(ConnectionError):
        script(keys=["k"], args=["a"])
    assert time.monotonic() - started < 0.5
    assert script._idle == []


def test_its_sockets_time_out_in_the_kernel_not_by_polling(client):
    script = DirectScript(client, ECHO)
    script(keys=["luffy:test:n"], args=["a"])
    sock = script._idle[0]._sock
    assert sock.gettimeout() is None  # blocking: no poll() before each send and receive
    received = struct.unpack("@ll", sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16))
    sent = struct.unpack("@ll", sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, 16))
    assert received == sent == (0, 500_000)  # the client's socket_timeout, 0.5 s
    client.get("luffy:test:n")  # the client's own pool is left as it was
    assert all(c._sock.gettimeout() == 0.5 for c in client.connection_pool._available_connections)
    script.close()


def test_a_silent_server_times_out_and_its_connection_is_dropped():
    listener = socket.create_server(("127.0.0.1", 0))
    held = []
    accepting = threading.Thread(target=lambda: held.append(listener.accept()), daemon=True)
    accepting.start()
    silent = redis.Redis(
        host="127.0.0.1",
        port=listener.getsockname()[1],
        socket_timeout=0.3,
        socket_connect_timeout=0.3,
        protocol=2,
    )
    script = DirectScript(silent, ECHO)
    started = time.monotonic()
    with pytest.raises((TimeoutError, ConnectionError)):
        script(keys=["k"], args=["a"])
    assert time.monotonic() - started < 1.5  # one timeout, no retries
    assert script._idle == []
    listener.close()


def test_a_forked_child_opens_its_own_connection(client):
    script = DirectScript(client, ECHO)
    script(keys=["luffy:test:n"], args=["parent"])
    parent_connection = script._idle[0]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: must not use the parent's socket
        try:
            reply = script(keys=["luffy:test:n"], args=["child"])
            ok = (
                reply == [b"child", b"2"]
                and script._idle
                and script._idle[0] is not parent_connection
            )
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    os.close(read)
    assert script(keys=["luffy:test:n"], args=["parent"]) == [b"parent", b"3"]
    assert script._idle == [parent_connection]
    script.close()


def test_threads_share_the_idle_connections_safely(client):
    script = DirectScript(client, ECHO)
    errors = []

    def run():
        try:
            for _ in range(200):
                script(keys=["luffy:test:n"], args=["x"])
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert client.get("luffy:test:n") == b"1600"
    assert 1 <= len(script._idle) <= 8
    script.close()
