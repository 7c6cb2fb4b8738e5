"""A minimal keep-alive HTTP/1.1 client on raw sockets (standard library only).

http.client parses headers with the email package, which on a 2-core machine
costs more CPU than the server under test; this client does just enough.
"""

import socket


class HttpError(Exception):
    pass


class Conn:
    """One keep-alive HTTP/1.1 connection with just enough parsing."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.sock = None
        self.buf = b""

    def _connect(self):
        self.sock = socket.create_connection((self.host, self.port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise HttpError("connection closed by server")
        self.buf += chunk

    def _read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read_line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def request(self, method, path, body=b"", ctype=None):
        if self.sock is None:
            self._connect()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                f"Content-Length: {len(body)}"]
        if ctype:
            head.append(f"Content-Type: {ctype}")
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = self._read_line()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise HttpError(f"bad status line {status_line!r}")
        status = int(parts[1])
        length, chunked, close = None, False, False
        while True:
            line = self._read_line()
            if not line:
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            value = value.strip()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and value.lower() == b"close":
                close = True
        if chunked:
            parts = []
            while True:
                size = int(self._read_line().split(b";")[0], 16)
                if size == 0:
                    while self._read_line():
                        pass
                    break
                parts.append(self._read_exact(size))
                self._read_line()
            data = b"".join(parts)
        elif length is not None:
            data = self._read_exact(length)
        else:  # read to EOF
            try:
                while True:
                    self._fill()
            except HttpError:
                pass
            data, self.buf = self.buf, b""
            close = True
        if close:
            self.close()
        return status, data
