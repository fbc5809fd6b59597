import socket
import threading

import pytest


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_server_and_client_on_loopback(host):
    server = socket.create_server((host, 0))
    port = server.getsockname()[1]

    def echo_once():
        conn, _ = server.accept()
        with conn:
            conn.sendall(conn.recv(1024).upper())

    thread = threading.Thread(target=echo_once)
    thread.start()
    with socket.create_connection((host, port), timeout=10) as client:
        client.sendall(b"ping")
        assert client.recv(1024) == b"PING"
    thread.join(10)
    server.close()
