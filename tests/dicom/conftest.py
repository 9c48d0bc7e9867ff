"""The real receiver in a thread of the test process (so it sees the test database), a registered sender, and
DCMTK's echoscu/storescu as the peers (tests skip, saying why, where DCMTK is not installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from dicom.receiver import DicomReceiver
from dicom.services import dicom_peer_create
from tests.factories import UserFactory

RECEIVER_AE = "FETALSITE"
SENDER_AE = "STORESCU"


@pytest.fixture
def root(db):
    return UserFactory(username="root", clinic=None, is_superuser=True, is_staff=True, role=None)


@pytest.fixture
def north_peer(north, root):
    return dicom_peer_create(clinic=north, ae_title=SENDER_AE, allowed_addresses="127.0.0.1", created_by=root)


def echo_status(port: int, *, calling: str = SENDER_AE) -> int | None:
    """A C-ECHO with pynetdicom as the sender: its status, or None when the association was not accepted."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title=RECEIVER_AE)
    if not assoc.is_established:
        return None
    try:
        return int(assoc.send_c_echo().Status)
    finally:
        assoc.release()


@pytest.fixture
def receiver_port(transactional_db, north_peer) -> int:
    """The receiver on a free port, ready once a real C-ECHO from the registered sender succeeds; stopped after."""
    receiver = DicomReceiver(host="127.0.0.1", port=0, ae_title=RECEIVER_AE)
    _, port = receiver.start()
    try:
        assert echo_status(port) == 0x0000, "the receiver did not answer a C-ECHO from a registered sender"
        yield port
    finally:
        receiver.stop(grace_s=5)


def dcmtk(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"DCMTK's {tool} is not installed (apt-get install dcmtk; .ci/test.sh installs it)")
    return path


def run_dcmtk(
    tool: str,
    port: int,
    *files: Path,
    options: tuple[str, ...] = (),
    calling: str = SENDER_AE,
    called: str = RECEIVER_AE,
) -> subprocess.CompletedProcess:
    """Run echoscu or storescu against the receiver, calling as ``calling``."""
    command = [dcmtk(tool), *options, "-aet", calling, "-aec", called, "127.0.0.1", str(port), *map(str, files)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.fixture
def server(live_server) -> str:
    """The live server's DICOMweb base URL (what a client or a PACS plugin is given)."""
    return f"{live_server.url}/dicomweb"
