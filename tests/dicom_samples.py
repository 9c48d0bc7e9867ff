"""DICOM Part 10 files made for tests with pydicom, from a real ultrasound image when one is at hand.

The pixels come from ../shared/data/fetal-planes (generated ones when it is absent); the headers say what an
ultrasound machine would. ``img2dcm_bytes`` has DCMTK make one from a JPEG, so the parser is not only tested on
files this module wrote.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import convert_color_space
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)

REAL_IMAGE = Path(__file__).resolve().parents[2] / "shared/data/fetal-planes/fetal_planes_db"
__all__ = [
    "ExplicitVRLittleEndian",
    "ImplicitVRLittleEndian",
    "JPEGBaseline8Bit",
    "RLELossless",
    "SecondaryCaptureImageStorage",
    "UltrasoundImageStorage",
    "UltrasoundMultiFrameImageStorage",
]


def ultrasound_pixels(width: int = 160, height: int = 120) -> np.ndarray:
    """A real fetal ultrasound frame, shrunk to ``width`` x ``height`` grey, or a generated fan when none is here."""
    real = sorted(REAL_IMAGE.glob("*.png"))[:1] if REAL_IMAGE.is_dir() else []
    if real:
        with Image.open(real[0]) as image:
            return np.asarray(image.convert("L").resize((width, height)))
    y, x = np.mgrid[0:height, 0:width]
    fan = np.hypot(x - width / 2, y) < height  # a sector of speckle, black around it, as a probe draws it
    # Smooth speckle grains of several pixels, as a probe's are (pixel-wise noise is no picture a JPEG codec keeps).
    grains = np.random.default_rng(7).integers(30, 220, size=(height // 8, width // 8), dtype=np.uint8)
    speckle = np.asarray(Image.fromarray(grains).resize((width, height), Image.Resampling.BILINEAR))
    return (speckle * fan).astype(np.uint8)


def dicom_bytes(
    pixels: np.ndarray | None = None,
    *,
    photometric: str = "MONOCHROME2",
    transfer_syntax: str = ExplicitVRLittleEndian,
    sop_class: str = UltrasoundImageStorage,
    patient_id: str = "MRN-DICOM-1",
    patient_name: str = "Doe^Jane",
    birth_date: str = "19900102",
    study_uid: str | None = None,
    sop_uid: str | None = None,
    accession: str = "ACC-1",
    study_date: str = "20240315",
    calibrated: bool = False,
    frames: int = 1,
    **elements,
) -> bytes:
    """A Part 10 file of one frame (``frames`` only declares more); ``elements`` set or override header items."""
    pixels = ultrasound_pixels() if pixels is None else pixels
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid = sop_uid or generate_uid()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid or generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.PatientBirthDate = patient_id, patient_name, birth_date
    ds.AccessionNumber, ds.StudyDate, ds.Modality = accession, study_date, "US"
    ds.Manufacturer, ds.ManufacturerModelName = "Acme Medical", "Sono 9"
    if frames > 1:
        ds.NumberOfFrames, ds.FrameTime = frames, "33.3"
    if calibrated:
        ds.SequenceOfUltrasoundRegions = Sequence([_region(pixels)])
    _set_pixels(ds, pixels, photometric, transfer_syntax)
    for keyword, value in elements.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _region(pixels: np.ndarray) -> Dataset:
    region = Dataset()
    region.RegionSpatialFormat, region.RegionDataType, region.RegionFlags = 1, 1, 0
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 0, 0
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = pixels.shape[1] - 1, pixels.shape[0] - 1
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3  # cm
    region.PhysicalDeltaX, region.PhysicalDeltaY = 0.0125, 0.015
    return region


def tissue_region(width: int, height: int, *, delta_x_cm: float = 0.01, delta_y_cm: float | None = None) -> Dataset:
    """One 2-D tissue region over a whole ``width`` x ``height`` frame, calibrated in cm, square pixels unless
    ``delta_y_cm`` differs: the calibration an image's pixel size is read from (biometry.ml.calibration)."""
    region = _region(np.zeros((height, width), dtype=np.uint8))
    region.PhysicalDeltaX = delta_x_cm
    region.PhysicalDeltaY = delta_x_cm if delta_y_cm is None else delta_y_cm
    return region


def _set_pixels(ds: Dataset, pixels: np.ndarray, photometric: str, transfer_syntax: str) -> None:
    colour = photometric in ("RGB", "YBR_FULL", "YBR_FULL_422")
    if colour and pixels.ndim == 2:
        pixels = np.stack([pixels, np.roll(pixels, 3, axis=1), 255 - pixels], axis=-1)
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = 8 if pixels.dtype == np.uint8 else 16
    ds.HighBit, ds.PixelRepresentation = ds.BitsStored - 1, 0
    if colour:
        ds.PlanarConfiguration = 0
    if photometric == "PALETTE COLOR":
        ramp = np.arange(256, dtype=np.uint16)
        for channel, values in zip(("Red", "Green", "Blue"), (ramp * 257, (255 - ramp) * 257, ramp * 128), strict=True):
            setattr(ds, f"{channel}PaletteColorLookupTableDescriptor", [256, 0, 16])
            setattr(ds, f"{channel}PaletteColorLookupTableData", values.astype("<u2").tobytes())
    if photometric == "YBR_FULL" and transfer_syntax != JPEGBaseline8Bit:  # stored as Y, Cb, Cr as the name says
        pixels = convert_color_space(pixels, "RGB", "YBR_FULL")
    if transfer_syntax == JPEGBaseline8Bit:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90, subsampling=1)  # 4:2:2, as the name says
        ds.PixelData = encapsulate([buffer.getvalue()])
        ds["PixelData"].VR = "OB"
        ds.LossyImageCompression = "01"
    elif transfer_syntax == RLELossless:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PixelData = pixels.tobytes()
        ds.compress(RLELossless, pixels, generate_instance_uid=False)
    elif UID(transfer_syntax).is_compressed:  # a syntax the server refuses: a stand-in codestream, never decoded
        ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(64)])
        ds["PixelData"].VR = "OB"
    else:
        ds.PixelData = pixels.tobytes()


def img2dcm_bytes(tmp_path: Path, **patient) -> bytes:
    """A DICOM file made by DCMTK's img2dcm from a real image saved as JPEG (Secondary Capture, JPEG Baseline)."""
    jpeg = tmp_path / "frame.jpg"
    Image.fromarray(ultrasound_pixels()).save(jpeg, format="JPEG", quality=92)
    out = tmp_path / "frame.dcm"
    keys = {"PatientID": "MRN-DICOM-1", "PatientName": "Doe^Jane", "PatientBirthDate": "19900102", **patient}
    command = [shutil.which("img2dcm") or "img2dcm", "-q", str(jpeg), str(out)]
    for keyword, value in keys.items():
        command += ["-k", f"{keyword}={value}"]
    subprocess.run(command, check=True, capture_output=True, timeout=30)
    return out.read_bytes()
