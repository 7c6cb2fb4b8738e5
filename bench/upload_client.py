#!/usr/bin/env python3
"""A minimal HTTP/1.1 upload client for bench/sessions.sh (standard library
only). Bodies go out with socket.sendfile (zero-copy from the page cache), so
the plain PUT and the session chunks are sent the same way, over one
keep-alive connection, and the client costs next to nothing.

  upload_client.py put URL FILE OUT_JSON
      PUT the whole file to URL (…/images/<uuid>/file?compression=none).
  upload_client.py session BASE UUID FILE CHUNK SHA1 SHA256 OUT_JSON
      POST BASE/images/UUID/file/uploads, PUT the file in CHUNK-byte chunks
      with Content-Range, POST …?action=finish with sha1, sha256 and size.

Prints the wall time of the whole upload in seconds; writes the final JSON
answer (the image) to OUT_JSON. Any non-2xx answer is an error (exit 1).
"""

import json
import os
import socket
import sys
import time
from urllib.parse import urlsplit


class Conn:
    def __init__(self, base):
        u = urlsplit(base)
        self.host = u.hostname
        self.port = u.port or 80
        self.sock = socket.create_connection((self.host, self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _read_until(self, marker):
        while marker not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise SystemExit("connection closed by the server")
            self.buf += data
        head, self.buf = self.buf.split(marker, 1)
        return head

    def _read_exact(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(max(65536, n - len(self.buf)))
            if not data:
                raise SystemExit("connection closed by the server")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def request(self, method, path, headers=None, file=None, offset=0, count=0):
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        lines.append(f"Content-Length: {count if file else 0}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        if file:
            sent = 0
            while sent < count:
                n = self.sock.sendfile(file, offset + sent, count - sent)
                if n == 0:
                    raise SystemExit("sendfile sent nothing")
                sent += n
        head = self._read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        length, chunked = 0, False
        for h in head[1:]:
            k, _, v = h.partition(":")
            k, v = k.strip().lower(), v.strip().lower()
            if k == "content-length":
                length = int(v)
            elif k == "transfer-encoding" and "chunked" in v:
                chunked = True
        if chunked:
            body = b""
            while True:
                n = int(self._read_until(b"\r\n").split(b";")[0], 16)
                body += self._read_exact(n)
                self._read_until(b"\r\n")
                if n == 0:
                    break
        else:
            body = self._read_exact(length)
        if not 200 <= status < 300:
            raise SystemExit(f"{method} {path}: {status} {body[:300]!r}")
        return json.loads(body) if body else None


def main():
    mode = sys.argv[1]
    if mode == "put":
        url, path, out = sys.argv[2:5]
        u = urlsplit(url)
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            conn = Conn(url)
            t0 = time.monotonic()
            answer = conn.request("PUT", f"{u.path}?{u.query}", {}, f, 0, size)
            elapsed = time.monotonic() - t0
    elif mode == "session":
        base, uuid, path, chunk, sha1, sha256, out = sys.argv[2:9]
        chunk = int(chunk)
        size = os.path.getsize(path)
        root = f"/images/{uuid}/file/uploads"
        with open(path, "rb") as f:
            conn = Conn(base)
            t0 = time.monotonic()
            session = conn.request("POST", f"{root}?compression=none&size={size}")
            sid = session["upload_id"]
            at = 0
            while at < size:
                n = min(chunk, size - at)
                rng = f"bytes {at}-{at + n - 1}/{size}"
                got = conn.request("PUT", f"{root}/{sid}", {"Content-Range": rng}, f, at, n)
                assert got["offset"] == at + n, got
                at += n
            answer = conn.request(
                "POST",
                f"{root}/{sid}?action=finish&sha1={sha1}&sha256={sha256}&size={size}",
            )
            elapsed = time.monotonic() - t0
    else:
        raise SystemExit(f"unknown mode {mode}")
    with open(out, "w") as o:
        json.dump(answer, o)
    print(f"{elapsed:.4f}")


if __name__ == "__main__":
    main()
