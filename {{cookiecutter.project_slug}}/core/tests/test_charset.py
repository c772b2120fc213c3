"""A declared charset Django cannot decode with is a 400 at the ASGI edge (core/charset.py)."""

import json

import pytest

from core.asgi import ASGIHandler
from core.charset import declared_charsets, usable
from core.testing import asgi_request

MULTIPART = b'--XX\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--XX--\r\n'


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data; boundary=XX; charset=rot13",  # not a text encoding: LookupError
        "multipart/form-data; boundary=XX; charset=hex",
        "multipart/form-data; boundary=XX; charset=uu_codec",
        "multipart/form-data; boundary=XX; charset=idna",  # no errors="replace": UnicodeError
        "multipart/form-data; boundary=XX; charset=utf-8; charset=rot13",
        "multipart/form-data; boundary=XX; charset=nonsense",
        "application/x-www-form-urlencoded; charset=iso-8859-1",  # Django's BadRequest
        "application/x-www-form-urlencoded; charset=windows-1252",
        "application/x-www-form-urlencoded; charset=utf-16",
    ],
)
@pytest.mark.parametrize("path", ["/healthz", "/", "/admin/login/", "/nowhere/"])
async def test_an_unusable_charset_is_400_json(content_type, path):
    response = await asgi_request(
        ASGIHandler(),
        method="POST",
        path=path,
        headers=[("content-type", content_type), ("cookie", "csrftoken=" + "a" * 32)],
        body=MULTIPART,
    )
    assert response.status == 400
    assert "detail" in json.loads(response.body)
    assert response.headers["connection"] == "close"


async def test_a_get_with_an_unusable_charset_is_400_too():
    response = await asgi_request(
        ASGIHandler(), path="/healthz?a=b", headers=[("content-type", "text/plain; charset=hex")]
    )
    assert response.status == 400


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data; boundary=XX; charset=utf-8",
        "multipart/form-data; boundary=XX; charset=latin-1",
        'application/x-www-form-urlencoded; charset="UTF-8"',
        "application/json",
    ],
)
async def test_a_usable_charset_reaches_django(content_type):
    response = await asgi_request(
        ASGIHandler(), method="POST", path="/healthz", headers=[("content-type", content_type)]
    )
    assert response.status == 403  # the CSRF check, which read the body
    assert b"CSRF" in response.body


def test_every_charset_parameter_is_read():
    assert declared_charsets('Multipart/Form-Data; boundary=x; CHARSET="a"; charset=b') == (
        "multipart/form-data",
        ["a", "b"],
    )
    assert usable("utf-8")
    assert usable("cp1252")
    assert not usable("base64")
