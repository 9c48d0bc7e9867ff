"""The client address behind reverse proxies: only what our own proxies wrote is trusted."""

import pytest

from fetalsite.audit.models import AccessLogEntry
from fetalsite.core.client_ip import client_ip


@pytest.mark.parametrize(
    ("count", "forwarded", "expected"),
    [
        (0, "203.0.113.9", "10.0.0.2"),  # no proxy configured: the header is ignored
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # a forged left-most entry is not used
        (2, "203.0.113.9, 10.0.0.7", "203.0.113.9"),
        (2, "203.0.113.9", "10.0.0.2"),  # fewer entries than proxies: fall back to the peer
    ],
)
def test_client_ip_reads_only_trusted_hops(rf, settings, count, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = count
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


def test_access_log_records_the_client_behind_the_proxy(client, settings, sonographer, study):
    settings.TRUSTED_PROXY_COUNT = 1
    client.force_login(sonographer)
    response = client.get(f"/studies/{study.id}/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert response.status_code == 200
    assert AccessLogEntry.objects.filter(object_type="study", object_id=study.id).get().ip == "203.0.113.9"
