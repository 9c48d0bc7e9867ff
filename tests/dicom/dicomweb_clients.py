"""How the DICOMweb tests talk to the live server: dicomweb-client as an integration would, and raw requests
where the client hides what is checked (status codes, headers, the bytes themselves)."""

from __future__ import annotations

import email
import io

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from rest_framework.authtoken.models import Token


def token_of(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def client_for(server: str, user) -> DICOMwebClient:
    return DICOMwebClient(url=server, headers={"Authorization": f"Token {token_of(user)}"})


def dataset(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def stow(server: str, user, parts: list[bytes], *, boundary: str = "b0undary") -> requests.Response:
    body = b"".join(
        b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + part + b"\r\n" for part in parts
    )
    return requests.post(
        f"{server}/studies",
        data=body + b"--" + boundary.encode() + b"--\r\n",
        headers={
            "Authorization": f"Token {token_of(user)}",
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        },
        timeout=30,
    )


def get(url: str, user, **headers) -> requests.Response:
    return requests.get(url, headers={"Authorization": f"Token {token_of(user)}", **headers}, timeout=30)


def multipart_payloads(response: requests.Response) -> list[bytes]:
    """The parts of a multipart/related answer, each checked to be application/dicom, read by the standard
    library's MIME parser (not by the server's own code)."""
    message = email.message_from_bytes(
        f"Content-Type: {response.headers['Content-Type']}\r\n\r\n".encode() + response.content
    )
    parts = message.get_payload()
    assert all(part.get_content_type() == "application/dicom" for part in parts)
    return [part.get_payload(decode=True) for part in parts]
