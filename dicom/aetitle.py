"""DICOM Application Entity titles and the address allow-list of a known sender: parsing and validation.

PS3.5 6.2 (AE VR): at most 16 characters of the default character repertoire without backslash or control
characters; leading and trailing spaces are not significant, and a title of spaces only is not a title."""

from __future__ import annotations

import ipaddress

from django.core.exceptions import ValidationError

AE_TITLE_MAX_LENGTH = 16


def ae_title_normalize(value: str) -> str:
    """The significant part of an AE title (what is stored and compared)."""
    return value.strip(" ")


def validate_ae_title(value: str) -> None:
    title = ae_title_normalize(value)
    if not title:
        raise ValidationError("An AE title must have at least one character other than a space.")
    if len(title) > AE_TITLE_MAX_LENGTH:
        raise ValidationError(f"An AE title has at most {AE_TITLE_MAX_LENGTH} characters.")
    if "\\" in title or any(not (0x20 <= ord(char) < 0x7F) for char in title):
        raise ValidationError("An AE title may not hold a backslash, control characters or non-ASCII characters.")


def parse_networks(value: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated IP addresses or CIDRs (a bare address is a /32 or /128); raises ValueError on a bad one."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip()]


def validate_networks(value: str) -> None:
    try:
        parse_networks(value)
    except ValueError as error:
        raise ValidationError(f"Give IP addresses or networks separated by commas ({error}).")


def address_allowed(address: str, allowed: str) -> bool:
    """Whether ``address`` lies in the allow-list; an empty list allows every address."""
    networks = parse_networks(allowed)
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    return any(ip in network for network in networks)
