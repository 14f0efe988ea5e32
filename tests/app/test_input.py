"""Hostile input against the app under real gunicorn, sent as an attacker would: raw HTTP on a
socket (lying or missing Content-Length, chunked bodies without end, broken chunk framing),
forms and other content types, deep JSON, invalid UTF-8. Every refusal is JSON, the counter
does not move, and gunicorn's log holds no traceback."""
from __future__ import annotations

import json
import socket
import time
from typing import Iterator

import pytest
import requests

from apptest_support import Gunicorn, RedisProcess, redis_url

MAX_BODY = 4096  # the app's default MAX_BODY_BYTES
INCREMENT = "/api/counter/increment"


@pytest.fixture(scope="module")
def app(redis_pair: tuple[RedisProcess, RedisProcess]) -> Iterator[Gunicorn]:
    master, _replica = redis_pair
    server = Gunicorn({"REDIS_URL": redis_url(master), "COUNTER_KEY": "counter:test:input"})
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def counter_unchanged_and_no_traceback(app: Gunicorn, redis_pair) -> Iterator[None]:
    """Every test here sends requests that must change nothing and log no traceback."""
    master, _replica = redis_pair
    master.client().set("counter:test:input", 100)
    yield
    assert master.client().get("counter:test:input") == "100"
    log = app.output()
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]


class Answer:
    def __init__(self, raw: bytes) -> None:
        head, _sep, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines[0] else 0
        self.headers = {k.strip().lower(): v.strip()
                        for k, _s, v in (line.partition(":") for line in lines[1:])}
        if self.headers.get("transfer-encoding") == "chunked":
            body = _dechunk(body)
        self.body = body

    def json(self) -> dict:
        assert self.headers.get("content-type") == "application/json", self.headers
        return json.loads(self.body)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _sep, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out


def raw(app: Gunicorn, head: str, body: bytes = b"", *, chunks: Iterator[bytes] | None = None,
        half_close: bool = False, timeout: float = 10) -> Answer:
    """Send one request as bytes on a new connection (Connection: close) and read the answer.
    The server may answer and close before the whole body is sent, as a real server does
    with an oversized upload: a failed send is then not an error, the answer is what counts."""
    request = (head.replace("\n", "\r\n").rstrip("\r\n")
               + "\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", app.port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
            for chunk in chunks or ():
                sock.sendall(chunk)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = b""
        try:
            while data := sock.recv(65536):
                received += data
        except ConnectionResetError:
            pass  # the answer, if any, came before the reset
    assert received, "no answer at all"
    return Answer(received)


def post(app: Gunicorn, body: bytes, content_type: str | None = "application/json",
         path: str = INCREMENT, extra: str = "") -> Answer:
    head = f"POST {path} HTTP/1.1\nContent-Length: {len(body)}\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\n"
    return raw(app, head + extra, body)


# --- size --------------------------------------------------------------------------------------

def test_body_at_the_limit_is_read_one_byte_over_is_413(app: Gunicorn) -> None:
    at_limit = b'{"by": 0}'.ljust(MAX_BODY)  # JSON allows trailing spaces; by 0 is refused: 400
    answer = post(app, at_limit)
    assert answer.status == 400 and "between 1 and" in answer.json()["error"]
    answer = post(app, at_limit + b" ")
    assert answer.status == 413
    assert answer.json() == {"error": f"request body over {MAX_BODY} bytes"}


def test_huge_declared_length_is_413_before_the_body_is_sent(app: Gunicorn) -> None:
    started = time.monotonic()
    answer = raw(app, f"POST {INCREMENT} HTTP/1.1\nContent-Type: application/json\n"
                      f"Content-Length: {10 ** 12}\n", b'{"by": ')
    # The app answers from the header alone; it does not wait for a terabyte.
    assert time.monotonic() - started < 5
    assert answer.status == 413 and "request body over" in answer.json()["error"]


def test_oversized_upload_is_413_not_read_to_the_end(app: Gunicorn) -> None:
    body = b'{"by": 1, "x": "' + b"a" * (4 << 20) + b'"}'
    answer = post(app, body)
    assert answer.status == 413 and "request body over" in answer.json()["error"]


def test_chunked_body_over_the_limit_is_413(app: Gunicorn) -> None:
    piece = b'{"by": 1}' + b" " * 1015  # 1 KiB
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    answer = raw(app, f"POST {INCREMENT} HTTP/1.1\nContent-Type: application/json\n"
                      "Transfer-Encoding: chunked\n", chunk * 8 + b"0\r\n\r\n")
    assert answer.status == 413 and "request body over" in answer.json()["error"]


def test_endless_chunked_body_is_cut_off_with_413(app: Gunicorn) -> None:
    # A stream with no end and no length: the app stops reading at the limit and answers.
    chunk = b"400\r\n" + b" " * 0x400 + b"\r\n"
    answer = raw(app, f"POST {INCREMENT} HTTP/1.1\nContent-Type: application/json\n"
                      "Transfer-Encoding: chunked\n", b"", chunks=iter([chunk] * 2048))
    assert answer.status == 413 and "request body over" in answer.json()["error"]


def test_chunked_body_under_the_limit_is_served(app: Gunicorn, redis_pair) -> None:
    body = b'{"by": 5}'
    answer = raw(app, f"POST {INCREMENT} HTTP/1.1\nContent-Type: application/json\n"
                      "Transfer-Encoding: chunked\n",
                 b"4\r\n" + body[:4] + b"\r\n5\r\n" + body[4:] + b"\r\n0\r\n\r\n")
    assert answer.status == 200 and answer.json() == {"value": 105}
    master, _replica = redis_pair
    master.client().set("counter:test:input", 100)  # what the autouse fixture checks


@pytest.mark.parametrize("body", [
    b"zz\r\n{}\r\n0\r\n\r\n",             # chunk size is not hex
    b"4\r\n{}  XX0\r\n\r\n",               # chunk data longer than its size
    b"2;" + b"x" * 9000,                 # a chunk-size line that does not end
])
def test_broken_chunk_framing_is_400_json(app: Gunicorn, body: bytes) -> None:
    answer = raw(app, f"POST {INCREMENT} HTTP/1.1\nContent-Type: application/json\n"
                      "Transfer-Encoding: chunked\n", body)
    assert answer.status == 400, answer.body
    assert "error" in answer.json()


def test_body_shorter_than_its_length_is_400(app: Gunicorn) -> None:
    # The client declares 100 bytes, sends 8 and closes its side.
    answer = raw(app, f"POST {INCREMENT} HTTP/1.1\nContent-Type: application/json\n"
                      "Content-Length: 100\n", b'{"by": 1', half_close=True)
    assert answer.status == 400 and "error" in answer.json()


# --- content type and cross-site requests ------------------------------------------------------

@pytest.mark.parametrize("content_type, body", [
    ("application/x-www-form-urlencoded", b"by=5"),
    ("application/x-www-form-urlencoded", b""),              # a form with no fields
    ("text/plain", b'{"by": 5}'),                             # the classic JSON-over-form trick
    ("text/plain; charset=utf-8", b""),
    ("multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-data; name="by"'
                                        b'\r\n\r\n5\r\n--x--\r\n'),
    ("application/json-patch+json", b'{"by": 5}'),
    ("", b'{"by": 5}'),
])
def test_post_that_is_not_json_is_415(app: Gunicorn, content_type: str, body: bytes) -> None:
    for path in (INCREMENT, "/api/counter/decrement", "/api/counter/reset"):
        answer = post(app, body, content_type, path)
        assert answer.status == 415, (path, answer.body)
        assert "Content-Type must be application/json" in answer.json()["error"]


def test_long_content_type_is_not_echoed(app: Gunicorn) -> None:
    answer = post(app, b"{}", "text/" + "x" * 4000)
    assert answer.status == 415 and len(answer.json()["error"]) < 100


def test_body_without_content_type_is_415(app: Gunicorn) -> None:
    answer = post(app, b'{"by": 5}', content_type=None)
    assert answer.status == 415 and "needs Content-Type" in answer.json()["error"]


def test_json_with_parameters_and_empty_bodies_are_served(app: Gunicorn, redis_pair) -> None:
    master, _replica = redis_pair
    assert post(app, b'{"by": 2}', "Application/JSON; charset=utf-8").json() == {"value": 102}
    assert post(app, b"", content_type=None).json() == {"value": 103}  # curl -X POST
    assert post(app, b"", "application/json").json() == {"value": 104}
    master.client().set("counter:test:input", 100)


@pytest.mark.parametrize("headers", [
    "Sec-Fetch-Site: cross-site\n",
    "Sec-Fetch-Site: same-site\n",
    "Origin: http://evil.example\n",
    "Origin: null\n",
    "Origin: http://127.0.0.1:1\n",                      # same host, another port: another origin
    # Sec-Fetch-Site, set by the browser, wins over an Origin that looks right.
    "Sec-Fetch-Site: cross-site\nOrigin: http://127.0.0.1\n",
])
def test_cross_site_post_is_403(app: Gunicorn, headers: str) -> None:
    answer = post(app, b'{"by": 5}', extra=headers)
    assert answer.status == 403 and "refused" in answer.json()["error"]


def test_same_origin_post_is_served(app: Gunicorn, redis_pair) -> None:
    master, _replica = redis_pair
    # raw() sends Host: 127.0.0.1, so these name the same origin.
    assert post(app, b"{}", extra="Sec-Fetch-Site: same-origin\n").json() == {"value": 101}
    assert post(app, b"{}", extra="Origin: http://127.0.0.1\n").json() == {"value": 102}
    master.client().set("counter:test:input", 100)


# --- JSON content ------------------------------------------------------------------------------

@pytest.mark.parametrize("body, fragment", [
    (b"[" * 4000, "nested deeper than 20"),                       # was a RecursionError: 500
    (b'{"a":' * 600 + b"1" + b"}" * 600, "nested deeper than 20"),
    (b"[" * 21 + b"]" * 21, "nested deeper than 20"),
    (b"[" * 20 + b"]" * 20, "must be an object"),                 # the limit itself parses
    (b'{"by": "' + b"[" * 3000 + b'"}', "'by' must be an integer"),  # brackets in a string
    (b'{"by": "\xff"}', "not UTF-8"),
    (b'{"by": 1, "\xc0\xaf": 2}', "not UTF-8"),                   # overlong encoding
    ('{"by": 5}'.encode("utf-16"), "not UTF-8"),
    (b'\xef\xbb\xbf{"by": 5}', "malformed JSON"),                  # a BOM
    (b'{"by": NaN}', "malformed JSON"),
    (b'{"by": -Infinity}', "malformed JSON"),
    (b'{"by": 1e999}', "'by' must be an integer"),
    (b'{"by": "\\ud800"}', "'by' must be an integer"),            # a lone surrogate
    (b'{"\\ud800": 1}', "unknown field(s)"),
    (b'{"by": ' + b"9" * 4000 + b"}", "between 1 and 1000000"),
    (b"\x00" * 100, "malformed JSON"),
])
def test_hostile_json_is_400(app: Gunicorn, body: bytes, fragment: str) -> None:
    answer = post(app, body)
    assert answer.status == 400, answer.body
    assert fragment in answer.json()["error"]


def test_error_shape_is_the_same_everywhere(app: Gunicorn) -> None:
    """Each refusal above and the routing errors: a JSON object with one string "error"."""
    for answer in (post(app, b"x" * (MAX_BODY + 1)), post(app, b"by=1", "text/plain"),
                   post(app, b"[" * 100), post(app, b"{}", extra="Origin: null\n"),
                   raw(app, "GET /nope HTTP/1.1\n"), raw(app, f"GET {INCREMENT} HTTP/1.1\n"),
                   raw(app, "DELETE /api/counter HTTP/1.1\n")):
        data = answer.json()
        assert list(data) == ["error"] and isinstance(data["error"], str), data


def test_page_script_posts_are_still_accepted(app: Gunicorn, redis_pair) -> None:
    # What the page's fetch() sends: same-origin, JSON, "{}".
    master, _replica = redis_pair
    resp = requests.post(app.base + INCREMENT, data="{}", timeout=5, headers={
        "Content-Type": "application/json", "Sec-Fetch-Site": "same-origin",
        "Origin": app.base})
    assert resp.status_code == 200 and resp.json() == {"value": 101}
    master.client().set("counter:test:input", 100)
