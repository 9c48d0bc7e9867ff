"""Read a DICOM Part 10 file: its header facts and the same 8-bit display rendition as any upload.

Only what the clinic's ultrasound machines send is accepted (see docs/dicom.md): three SOP classes, six
photometric interpretations and four transfer syntaxes that pydicom decodes with numpy (uncompressed,
RLE) or Pillow (JPEG Baseline). Everything else is refused with a code naming why, never a 500.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from PIL import Image

from biometry.ml.calibration import dicom_calibration
from classifier.ml.frames import dicom_display_image
from classifier.ml.preprocessing import to_bounded_8bit
from fetalsite.core.errors import ApplicationError
from patients.imaging import DERIVED_MAX_SIDE, ImageFacts, display_png

SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound Image Storage",
    "1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame Image Storage",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
}
TRANSFER_SYNTAXES = {
    "1.2.840.10008.1.2": "Implicit VR Little Endian",
    "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
    "1.2.840.10008.1.2.5": "RLE Lossless",
    "1.2.840.10008.1.2.4.50": "JPEG Baseline",
}
PHOTOMETRIC = {"MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "PALETTE COLOR"}
DICOM_EXTENSION = "dcm"
DICOM_FORMAT = "DICOM"
UID_PATTERN = re.compile(r"[0-9][0-9.]{0,63}")
CM = 3  # Physical Units X/Y Direction: 3 is centimetres (PS3.3 C.8.5.5.1.15)


class DicomRefused(ApplicationError):
    """A DICOM file this server does not accept; ``code`` says why (docs/dicom.md lists them).

    Raised on field ``file`` like an image upload's validation error, so the API answers ``fields.file``
    too, while the network receiver maps ``code`` to a DIMSE status."""

    def __init__(self, message: str, *, code: str, http_status: int = 400):
        super().__init__(message, fields={"file": [message]})
        self.code = code
        self.http_status = http_status


@dataclass(frozen=True)
class DicomHeader:
    """What the file says about itself, its patient and its study (recorded on DicomInstance and Study)."""

    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    study_instance_uid: str
    transfer_syntax_uid: str
    manufacturer: str
    model_name: str
    number_of_frames: int
    frame_time_ms: float | None
    pixel_spacing_x_mm: float | None
    pixel_spacing_y_mm: float | None
    # The size of one of the file's pixels in mm by the strict rule of biometry.ml.calibration (one 2-D tissue
    # region, cm both ways, square pixels); None when the file gives none. The image's pixel size (a display
    # pixel's) is made from it by patients.services.
    pixel_size_mm: float | None
    patient_id: str
    patient_family_name: str
    patient_given_name: str
    patient_birth_date: date | None
    study_date: date | None
    accession_number: str


@dataclass(frozen=True)
class DicomFacts(ImageFacts):
    dicom: DicomHeader | None = None


def is_part10(data: bytes) -> bool:
    """A DICOM Part 10 file: 128 bytes of preamble, then ``DICM``."""
    return data[128:132] == b"DICM"


def inspect_dicom_bytes(data: bytes) -> DicomFacts:
    """The facts of an acceptable single-frame DICOM file, or DicomRefused naming what is not accepted.

    A file of several frames is a cine loop, read by patients.cine_files.inspect_dicom_file (which reads both,
    and is what the upload and the network receivers call)."""
    dataset, header = read_dicom(data)
    if header.number_of_frames > 1:
        raise ValueError("A multi-frame DICOM file is a cine loop: patients.cine_files.inspect_dicom_file reads it.")
    return dicom_still_facts(data, dataset=dataset, header=header)


def dicom_still_facts(data: bytes, *, dataset, header: DicomHeader) -> DicomFacts:
    """A single-frame file's facts, its header already read and checked (read_dicom): the frame decoded once."""
    check_pixel_data_length(dataset, header)
    try:
        derived = to_bounded_8bit(_display_image(dataset), max_side=DERIVED_MAX_SIDE)
    except Exception as error:  # pydicom and its decoders raise many types on malformed input: a refusal
        raise DicomRefused(
            f"The DICOM file is damaged and cannot be read ({error.__class__.__name__}).", code="dicom_corrupt"
        ) from None
    return DicomFacts(
        format=DICOM_FORMAT,
        extension=DICOM_EXTENSION,
        width=derived.width,
        height=derived.height,
        byte_size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        derived_png=display_png(derived),
        original_width=int(dataset.Columns),
        original_height=int(dataset.Rows),
        dicom=header,
    )


def read_dicom(data: bytes):
    """The parsed file and its header once what is accepted and the declared size of a frame are checked;
    DicomRefused otherwise. No pixel is decoded, and the pixel data's length is not checked yet
    (check_pixel_data_length): a cine loop's frame limits come first."""
    import pydicom  # noqa: PLC0415 - loaded on the first DICOM file, not by every process that imports patients

    if len(data) > settings.UPLOAD_MAX_BYTES:
        limit_mb = settings.UPLOAD_MAX_BYTES / (1024 * 1024)
        raise DicomRefused(f"The file is larger than the {limit_mb:.0f} MB limit.", code="too_large", http_status=413)
    if not is_part10(data):
        raise DicomRefused("The file is not a DICOM Part 10 file (no DICM preamble).", code="not_dicom")
    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
        header = _header(dataset)
        _check_supported(dataset, header)
        _check_declared_size(dataset, header)
    except DicomRefused:
        raise
    except Exception as error:  # pydicom raises many types on malformed input: a refusal, never a 500
        raise DicomRefused(
            f"The DICOM file is damaged and cannot be read ({error.__class__.__name__}).", code="dicom_corrupt"
        ) from None
    return dataset, header


def _text(dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    return str(value).strip() if value is not None else ""


def _date(dataset, keyword: str) -> date | None:
    value = _text(dataset, keyword)
    try:
        return datetime.strptime(value[:8], "%Y%m%d").date() if value else None
    except ValueError:
        return None  # a malformed optional date is treated as absent, not as a broken file


def _header(dataset) -> DicomHeader:
    meta = dataset.file_meta
    uids = {k: _text(dataset, k) for k in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")}
    missing = [name for name, value in uids.items() if not value]
    if missing:
        raise DicomRefused(f"The DICOM header lacks {', '.join(missing)}.", code="dicom_corrupt")
    malformed = [name for name, value in uids.items() if not UID_PATTERN.fullmatch(value)]
    if malformed:  # they become keys here (idempotency, study lookup): digits and dots only, as PS3.5 9.1 says
        raise DicomRefused(f"The DICOM header's {', '.join(malformed)} is not a valid UID.", code="dicom_corrupt")
    name = dataset.get("PatientName")
    frame_time = dataset.get("FrameTime")
    spacing_x, spacing_y = _region_spacing_mm(dataset)
    return DicomHeader(
        sop_instance_uid=uids["SOPInstanceUID"],
        sop_class_uid=_text(dataset, "SOPClassUID") or _text(meta, "MediaStorageSOPClassUID"),
        series_instance_uid=uids["SeriesInstanceUID"],
        study_instance_uid=uids["StudyInstanceUID"],
        transfer_syntax_uid=_text(meta, "TransferSyntaxUID"),
        manufacturer=_text(dataset, "Manufacturer")[:64],
        model_name=_text(dataset, "ManufacturerModelName")[:64],
        number_of_frames=int(dataset.get("NumberOfFrames") or 1),
        frame_time_ms=float(frame_time) if frame_time not in (None, "") else None,
        pixel_spacing_x_mm=spacing_x,
        pixel_spacing_y_mm=spacing_y,
        pixel_size_mm=_file_pixel_size_mm(dataset),
        patient_id=_text(dataset, "PatientID"),
        patient_family_name=(str(name.family_name).strip() if name else ""),
        patient_given_name=(str(name.given_name).strip() if name else ""),
        patient_birth_date=_date(dataset, "PatientBirthDate"),
        study_date=_date(dataset, "StudyDate"),
        accession_number=_text(dataset, "AccessionNumber")[:64],
    )


def _region_spacing_mm(dataset) -> tuple[float | None, float | None]:
    """The Physical Delta X and Y in mm of the first ultrasound region calibrated in centimetres both ways, as
    the file states them (DicomInstance's record, shown in the API's ``dicom``); (None, None) when no region is.
    Not a pixel size to measure with: that is ``DicomHeader.pixel_size_mm`` (one tissue region, square pixels)."""
    for region in dataset.get("SequenceOfUltrasoundRegions") or []:
        units = (region.get("PhysicalUnitsXDirection"), region.get("PhysicalUnitsYDirection"))
        delta_x, delta_y = region.get("PhysicalDeltaX"), region.get("PhysicalDeltaY")
        if units == (CM, CM) and delta_x and delta_y:
            return abs(float(delta_x)) * 10, abs(float(delta_y)) * 10
    return None, None


def _file_pixel_size_mm(dataset) -> float | None:
    """One pixel of the file in mm by biometry.ml.calibration's strict rule; None without a usable calibration."""
    try:
        return dicom_calibration(dataset).pixel_size_mm
    except Exception:  # a malformed region (pydicom raises many types): no pixel size, yet not a damaged file
        return None


def _check_supported(dataset, header: DicomHeader) -> None:
    if header.sop_class_uid not in SOP_CLASSES:
        raise DicomRefused(
            f"Unsupported DICOM SOP class {header.sop_class_uid or '(none)'}; this server accepts "
            f"{', '.join(SOP_CLASSES.values())}.",
            code="dicom_unsupported",
        )
    if header.transfer_syntax_uid not in TRANSFER_SYNTAXES:
        raise DicomRefused(
            f"Unsupported transfer syntax {header.transfer_syntax_uid or '(none)'}; this server decodes "
            f"{', '.join(TRANSFER_SYNTAXES.values())}.",
            code="dicom_unsupported",
        )
    if "PixelData" not in dataset:
        raise DicomRefused("The DICOM file holds no pixel data.", code="dicom_no_pixels")
    photometric = _text(dataset, "PhotometricInterpretation")
    if photometric not in PHOTOMETRIC:
        raise DicomRefused(
            f"Unsupported photometric interpretation {photometric or '(none)'}; this server reads "
            f"{', '.join(sorted(PHOTOMETRIC))}.",
            code="dicom_unsupported",
        )


def _check_declared_size(dataset, header: DicomHeader) -> None:
    """The header's dimensions against the limits before a pixel is decoded. The limits are a frame's: a cine
    loop's frames are decoded one at a time (patients.cine_files), and its frame count has limits of its own."""
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    samples, bits = int(dataset.get("SamplesPerPixel") or 1), int(dataset.BitsAllocated)
    pixels = rows * columns
    if rows < 1 or columns < 1 or bits not in (1, 8, 16, 32):
        raise DicomRefused(f"The DICOM header declares {columns}x{rows} pixels of {bits} bits.", code="dicom_corrupt")
    if pixels > settings.UPLOAD_MAX_PIXELS:
        raise DicomRefused(
            f"The image is {columns}x{rows} pixels, more than this server accepts.", code="too_many_pixels"
        )
    # Decoding then applying a LUT makes 64-bit floats: count those, not the stored bits.
    needed, limit = pixels * samples * 8, settings.UPLOAD_MAX_DECODED_BYTES
    if needed > limit:
        mb = 1024 * 1024
        raise DicomRefused(
            f"The image needs {needed / mb:.0f} MB of memory once decoded, more than the {limit / mb:.0f} MB limit.",
            code="decoded_too_large",
        )


def check_pixel_data_length(dataset, header: DicomHeader) -> None:
    """Native pixel data shorter than the header declares for all its frames is refused, not half-decoded
    (encapsulated frames are checked as they are decoded)."""
    if dataset.file_meta.TransferSyntaxUID.is_compressed:
        return
    pixels = int(dataset.Rows) * int(dataset.Columns)
    samples, bits = int(dataset.get("SamplesPerPixel") or 1), int(dataset.BitsAllocated)
    frames = max(header.number_of_frames, 1)
    expected = pixels * frames * samples * bits // 8
    if _text(dataset, "PhotometricInterpretation") == "YBR_FULL_422":
        expected = pixels * frames * 2 * bits // 8  # two samples a pixel: Y Y Cb Cr for each pair
    actual = len(dataset.PixelData)
    if actual < expected:
        raise DicomRefused(
            f"The pixel data is shorter than the header declares ({actual} of {expected} bytes).",
            code="dicom_corrupt",
        )


def _display_image(dataset) -> Image.Image:
    """The frame as 8-bit grey or RGB, converted as every frame of a cine loop is (classifier.ml.frames)."""
    return dicom_display_image(dataset.pixel_array, dataset)  # YBR is converted to RGB by pydicom
