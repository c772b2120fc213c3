"""The charset a request declares for its body, checked at the ASGI edge.

Django decodes form bodies (and query strings) with the charset parameter of
the request's Content-Type, whatever codec Python finds by that name. Codecs
that are not text encodings (`rot13`, `hex`, `uu_codec`) and `idna` (which
cannot decode with errors="replace") make the parser raise LookupError or
UnicodeError: a 500 from wherever request.POST is first read (the CSRF
check, for one). Django itself refuses a urlencoded form in any charset but
UTF-8 with BadRequest, from the same places.

The project's handler (core/asgi.py) asks `charset_refusal` first, before a
byte of the body is read: a charset that is not a text encoding Python can
decode any bytes with, or a urlencoded body not in UTF-8, is a 400 JSON
answer. Every charset parameter counts (`charset=utf-8; charset=rot13`), not
only the one Django would pick.
"""

from django.http import JsonResponse

FORM = "application/x-www-form-urlencoded"
# Bytes that are valid in no common encoding: decoding them exercises the error handler.
PROBE = b"a\xff\xfe\x00\x80\xc0 \r\n"


def usable(charset: str) -> bool:
    """Whether `charset` names a text encoding that decodes any bytes with errors="replace"."""
    try:
        # bytes.decode refuses codecs that are not text encodings (LookupError), and
        # those that do not support the "replace" handler Django uses (UnicodeError).
        PROBE.decode(charset, "replace")
    except (LookupError, ValueError):
        return False
    return True


def declared_charsets(content_type: str) -> tuple[str, list[str]]:
    """The media type of a Content-Type header, lowercased, and every charset it declares."""
    media_type, *parameters = content_type.split(";")
    charsets = []
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charsets.append(value.strip().strip('"'))
    return media_type.strip().lower(), charsets


def charset_refusal(scope) -> JsonResponse | None:
    """The 400 for a request whose Content-Type declares a charset Django cannot use, or None."""
    for name, value in scope.get("headers", ()):
        if name != b"content-type":
            continue
        media_type, charsets = declared_charsets(value.decode("latin-1"))
        for charset in charsets:
            if not usable(charset):
                return refusal(f"The charset {charset[:40]!r} is not a usable text encoding.")
            if media_type == FORM and charset.lower() != "utf-8":
                return refusal(f"A {FORM} body must be UTF-8 encoded.")
    return None


def refusal(detail: str) -> JsonResponse:
    response = JsonResponse({"detail": detail}, status=400)
    # The body, if any, is still on the wire: close rather than read it.
    response["Connection"] = "close"
    response["X-Content-Type-Options"] = "nosniff"
    return response
