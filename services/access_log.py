"""gunicorn's access log without phones, keys or signatures, whatever its format says.

gunicorn fills the access-log format from "atoms": the request line with its
query string (`%(r)s`, `%(q)s`), every request header (`%({x-api-key}i)s`) and
every WSGI environ variable (`%({query_string}e)s`). This logger keeps only
atoms that cannot carry a secret or a phone: the query string is dropped
everywhere, request headers and environ variables are reduced to a short
list of harmless ones, and anything phone-like left in the path, referer or
user agent (a phone sent as a path segment) is masked. An atom the format asks
for and this logger dropped prints as "-".
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

# Request headers and environ variables an access log may show as they are.
_HEADERS = {"{user-agent}i", "{content-type}i", "{content-length}i", "{x-request-id}i", "{host}i",
            "{x-forwarded-for}i"}
_ENVIRON = {"{request_method}e", "{server_protocol}e", "{remote_addr}e", "{server_name}e", "{server_port}e"}
# Six or more digits, possibly broken up the ways people write phones (spaces, dots, dashes,
# brackets, their percent-encodings): masked wherever they appear.
_PHONEISH = re.compile(r"\d(?:[\d .()\-]|%20|%2[Bb]|%28|%29){4,}\d")
_BSUID = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{4,}")
_MASK = "****"


def _mask(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    value = _BSUID.sub(_MASK, value)
    return _PHONEISH.sub(lambda m: _MASK if sum(c.isdigit() for c in m.group()) >= 6 else m.group(), value)


def _without_query(value: str) -> str:
    return value.split("?", 1)[0]


class SafeAccessLogger(Logger):
    def atoms(self, resp, req, environ, request_time) -> dict[str, Any]:  # gunicorn's signature
        atoms = super().atoms(resp, req, environ, request_time)
        path = _mask(_without_query(environ.get("PATH_INFO") or environ.get("RAW_URI") or "-"))
        safe = {}
        for key, value in atoms.items():
            if key.startswith("{"):
                if key in _HEADERS or key in _ENVIRON or key.endswith("}o"):
                    safe[key] = _mask(value)
            else:
                safe[key] = value
        safe.update(
            r=f"{environ.get('REQUEST_METHOD', '-')} {path} {environ.get('SERVER_PROTOCOL', '-')}",
            # `u`: the user name of HTTP Basic auth, which a caller may fill with a key.
            U=path, q="-", u="-",
            f=_mask(_without_query(str(atoms.get("f") or "-"))),
            a=_mask(atoms.get("a")),
        )
        return safe
