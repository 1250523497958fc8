"""A fake WeChat / WeCom / Tencent Cloud SMS API on loopback that records what it receives."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes
    raw_query: str = ""  # the query string as sent (percent-encoded)

    @property
    def json(self) -> Any:
        return json.loads(self.raw) if self.raw else None

    def multipart(self) -> dict[str, tuple[str | None, str, bytes]]:
        """The parts of a multipart/form-data body: field -> (file name, type, bytes)."""
        head = f"Content-Type: {self.headers['content-type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + self.raw)
        assert message.is_multipart(), "not a multipart body"
        parts: dict[str, tuple[str | None, str, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            assert isinstance(name, str) and isinstance(payload, bytes)
            parts[name] = (part.get_filename(), part.get_content_type(), payload)
        return parts


@dataclass
class FakeProvider:
    """Issues tokens, checks them, and answers with scripted replies per path."""

    received: list[Received] = field(default_factory=list)
    token_number: int = 1
    # path -> queue of (status, body) answers used before the default one
    scripted: dict[str, deque[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    # media_id handed out per upload, in order
    media_ids: list[str] = field(default_factory=list)
    # WeCom customer contacts, external_userid -> externalcontact/get's answer
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def token(self) -> str:
        return f"tok-{self.token_number}"

    def expire_token(self) -> None:
        """The provider forgets the current token (expiry, or another holder refreshed)."""
        self.token_number += 1

    def add_contact(
        self, external_userid: str, name: str, *, userid: str, remark: str = "",
        mobiles: tuple[str, ...] = (), description: str = "",
    ) -> None:  # fmt: skip
        """A customer contact of staff member `userid`, as WeCom keeps it (again: edited)."""
        self.contacts[external_userid] = {
            "external_contact": {
                "external_userid": external_userid, "name": name, "type": 1,
                "avatar": "http://wx.qlogo.cn/mmhead/x/0", "gender": 1,
            },
            "follow_user": [
                {
                    "userid": userid, "remark": remark, "description": description,
                    "createtime": 1718582400, "tags": [], "remark_mobiles": list(mobiles),
                    "add_way": 1, "oper_userid": userid,
                }
            ],
        }  # fmt: skip

    def sent_texts(self, touser: str) -> list[str]:
        """The text messages message/send delivered to `touser`."""
        return [
            r.json["text"]["content"]
            for r in self.calls("/cgi-bin/message/send")
            if r.json["touser"] == touser and r.json["msgtype"] == "text"
        ]

    def script(self, path: str, *answers: tuple[int, dict[str, Any]]) -> None:
        self.scripted.setdefault(path, deque()).extend(answers)

    def calls(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def answer(self, request: Received) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.received.append(request)
            queue = self.scripted.get(request.path)
            if queue:
                return queue.popleft()
            if request.path == "/cgi-bin/gettoken":
                self.token_number += 0
                return 200, {"errcode": 0, "access_token": self.token, "expires_in": 7200}
            if request.path == "/cgi-bin/stable_token":
                return 200, {"access_token": self.token, "expires_in": 7200}
            if request.path == "/cgi-bin/media/upload":
                if request.query.get("access_token") != self.token:
                    return 200, {"errcode": 42001, "errmsg": "access_token expired"}
                if request.query.get("type") != "image" or "media" not in request.multipart():
                    return 200, {"errcode": 40004, "errmsg": "invalid media type"}
                media_id = f"media-{len(self.media_ids) + 1}"
                self.media_ids.append(media_id)
                return 200, {"errcode": 0, "type": "image", "media_id": media_id,
                             "created_at": "1718582400"}  # fmt: skip
            if request.path.startswith("/cgi-bin/externalcontact/"):
                return self._contacts(request)
            if request.path.startswith("/cgi-bin/message/"):
                if request.query.get("access_token") != self.token:
                    return 200, {"errcode": 42001, "errmsg": "access_token expired"}
                return 200, {"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": "m1"}
            if request.path == "/" and "x-acs-action" in request.headers:  # Aliyun
                return 200, {"Code": "OK", "Message": "OK", "BizId": "biz-1", "RequestId": "r-1"}
            if request.path == "/":
                return 200, {
                    "Response": {
                        "SendStatusSet": [
                            {"SerialNo": "sn-1", "Code": "Ok", "Message": "send success"}
                        ],
                        "RequestId": "req-1",
                    }
                }
            return 404, {"errcode": 404}

    def _contacts(self, request: Received) -> tuple[int, dict[str, Any]]:
        """externalcontact/get and /list, as WeCom answers them."""
        if request.method != "GET":
            return 200, {"errcode": 43001, "errmsg": "require GET method"}
        if request.query.get("access_token") != self.token:
            return 200, {"errcode": 42001, "errmsg": "access_token expired"}
        if request.path == "/cgi-bin/externalcontact/get":
            found = self.contacts.get(request.query.get("external_userid", ""))
            if found is None:
                return 200, {"errcode": 84061, "errmsg": "not external contact"}
            return 200, {"errcode": 0, "errmsg": "ok", **json.loads(json.dumps(found))}
        if request.path == "/cgi-bin/externalcontact/list":
            userid = request.query.get("userid", "")
            ids = [
                external
                for external, body in self.contacts.items()
                if any(f["userid"] == userid for f in body["follow_user"])
            ]
            return 200, {"errcode": 0, "errmsg": "ok", "external_userid": ids}
        return 404, {"errcode": 404}


def start(provider: FakeProvider) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            request = Received(
                method=self.command,
                path=parts.path,
                query={k: v[0] for k, v in parse_qs(parts.query).items()},
                headers={k.lower(): v for k, v in self.headers.items()},
                raw=self.rfile.read(length) if length else b"",
                raw_query=parts.query,
            )
            status, body = provider.answer(request)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _serve
        do_POST = _serve

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    provider.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
