"""evalmesh install bridge: an install's only way out of its sandbox.

The node runs, inside the sandbox (which has no network but a loopback of its
own)::

    python bridge.py SOCKET -- INSTALLER ARGS...

The bridge listens on the sandbox's loopback, forwards each connection
through SOCKET — a Unix socket the node mounts in — to the node's index
proxy, which allows only ``CONNECT`` to the package index, and runs the
installer with ``HTTP_PROXY`` and ``HTTPS_PROXY`` naming the bridge. It exits
with the installer's status. Only the standard library is imported.
"""

import os
import socket
import subprocess
import sys
import threading


def _pump(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _serve(listener, path):
    while True:
        client, _ = listener.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(path)
        except OSError:
            client.close()
            upstream.close()
            continue
        threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()


def main():
    path = sys.argv[1]
    command = sys.argv[3:]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    threading.Thread(target=_serve, args=(listener, path), daemon=True).start()
    proxy = "http://127.0.0.1:%d" % listener.getsockname()[1]
    env = dict(os.environ)
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[key] = proxy
    for key in ("NO_PROXY", "no_proxy"):
        env.pop(key, None)
    raise SystemExit(subprocess.call(command, env=env))


if __name__ == "__main__":
    main()
