"""Pixel size from a DICOM Sequence of Ultrasound Regions, on datasets built with pydicom in memory."""

from __future__ import annotations

import io

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, UltrasoundImageStorage, generate_uid

from biometry.ml.calibration import (
    REASON_AMBIGUOUS,
    REASON_BAD_BOUNDS,
    REASON_BAD_DELTA,
    REASON_NO_REGION_AT_POINT,
    REASON_NO_REGIONS,
    REASON_NO_TISSUE_REGION,
    REASON_NOT_CM,
    REASON_NOT_SQUARE,
    REASON_OK,
    dicom_calibration,
)

CM, SECONDS, CM_PER_S = 3, 4, 7  # PhysicalUnits codes (DICOM PS3.3 C.8.5.5.1.15)


def region(x0, y0, x1, y1, *, dx=0.01, dy=0.01, units=(CM, CM), spatial_format=1, data_type=1):
    r = Dataset()
    r.RegionSpatialFormat, r.RegionDataType, r.RegionFlags = spatial_format, data_type, 0
    r.RegionLocationMinX0, r.RegionLocationMinY0 = x0, y0
    r.RegionLocationMaxX1, r.RegionLocationMaxY1 = x1, y1
    r.PhysicalUnitsXDirection, r.PhysicalUnitsYDirection = units
    r.PhysicalDeltaX, r.PhysicalDeltaY = dx, dy
    return r


def dataset(*regions):
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = UltrasoundImageStorage, generate_uid()
    ds.Rows, ds.Columns = 600, 800
    if regions:
        ds.SequenceOfUltrasoundRegions = Sequence(list(regions))
    return ds


def written_and_read(ds):
    """Through a Part 10 file and back, so the values are pydicom's parsed types (DS, US), not Python floats."""
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return dcmread(io.BytesIO(buffer.getvalue()))


class TestDicomCalibration:
    def test_the_single_tissue_region_gives_mm_per_pixel(self):
        ds = written_and_read(dataset(region(0, 40, 799, 559, dx=0.0125, dy=0.0125)))

        calibration = dicom_calibration(ds)

        assert calibration.reason == REASON_OK
        assert calibration.pixel_size_mm == pytest.approx(0.125)
        assert calibration.region_bounds == (0, 40, 799, 559)

    def test_the_region_containing_the_point_is_used_beside_a_doppler_strip(self):
        tissue = region(0, 0, 799, 399, dx=0.02, dy=0.02)
        doppler = region(0, 400, 799, 599, dx=0.005, dy=2.5, units=(SECONDS, CM_PER_S), data_type=3)
        ds = written_and_read(dataset(tissue, doppler))

        in_tissue = dicom_calibration(ds, point=(400.0, 200.0))
        in_doppler = dicom_calibration(ds, point=(400.0, 500.0))
        nowhere = dicom_calibration(ds, point=(900.0, 200.0))
        without_point = dicom_calibration(ds)

        assert in_tissue.pixel_size_mm == pytest.approx(0.2)
        assert (in_doppler.pixel_size_mm, in_doppler.reason) == (None, REASON_NOT_CM)
        assert (nowhere.pixel_size_mm, nowhere.reason) == (None, REASON_NO_REGION_AT_POINT)
        assert without_point.pixel_size_mm == pytest.approx(0.2)

    def test_no_regions_means_no_pixel_size(self):
        assert dicom_calibration(dataset()).reason == REASON_NO_REGIONS
        assert dicom_calibration(dataset()).pixel_size_mm is None

    def test_a_region_in_other_units_gives_none(self):
        ds = dataset(region(0, 0, 799, 599, units=(CM, SECONDS)))

        assert dicom_calibration(ds).reason == REASON_NOT_CM

    def test_non_square_pixels_give_none_and_nearly_square_ones_pass(self):
        non_square = dataset(region(0, 0, 799, 599, dx=0.0125, dy=0.015))
        nearly = dataset(region(0, 0, 799, 599, dx=0.0125, dy=0.01251))

        assert (dicom_calibration(non_square).pixel_size_mm, dicom_calibration(non_square).reason) == (
            None,
            REASON_NOT_SQUARE,
        )
        assert dicom_calibration(nearly).pixel_size_mm == pytest.approx(0.12505)

    @pytest.mark.parametrize(("dx", "dy"), [(0.0, 0.0), (-0.01, -0.01), (0.01, None)])
    def test_a_missing_zero_or_negative_delta_gives_none(self, dx, dy):
        r = region(0, 0, 799, 599, dx=0.01, dy=0.01)
        r.PhysicalDeltaX = dx
        if dy is None:
            del r.PhysicalDeltaY
        else:
            r.PhysicalDeltaY = dy

        assert dicom_calibration(dataset(r)).reason == REASON_BAD_DELTA

    def test_without_a_point_only_a_2d_tissue_region_counts(self):
        m_mode = region(0, 0, 799, 599, spatial_format=3, data_type=1)  # 3 = M-mode
        colour_flow = region(0, 0, 799, 599, spatial_format=1, data_type=2)  # 2 = colour flow

        assert dicom_calibration(dataset(m_mode, colour_flow)).reason == REASON_NO_TISSUE_REGION

    def test_two_tissue_regions_that_disagree_are_ambiguous_and_two_that_agree_are_not(self):
        left, right = region(0, 0, 399, 599, dx=0.01, dy=0.01), region(400, 0, 799, 599, dx=0.02, dy=0.02)
        twin = region(400, 0, 799, 599, dx=0.01, dy=0.01)

        assert dicom_calibration(dataset(left, right)).reason == REASON_AMBIGUOUS
        assert dicom_calibration(dataset(left, right), point=(500.0, 300.0)).pixel_size_mm == pytest.approx(0.2)
        assert dicom_calibration(dataset(left, twin)).pixel_size_mm == pytest.approx(0.1)

    def test_overlapping_tissue_regions_with_different_sizes_at_the_point_are_ambiguous(self):
        whole, zoom = region(0, 0, 799, 599, dx=0.02, dy=0.02), region(200, 100, 599, 499, dx=0.01, dy=0.01)

        calibration = dicom_calibration(dataset(whole, zoom), point=(300.0, 300.0))

        assert (calibration.pixel_size_mm, calibration.reason) == (None, REASON_AMBIGUOUS)

    def test_a_malformed_region_bound_gives_none_with_its_reason_not_an_exception(self):
        """A sender's bound with two values: no pixel size from that file at all (and no TypeError)."""
        broken = region(0, 40, 799, 559, dx=0.0125, dy=0.0125)
        broken.RegionLocationMinX0 = [0, 5]

        for point in (None, (10.0, 50.0)):
            calibration = dicom_calibration(dataset(broken), point=point)

            assert (calibration.pixel_size_mm, calibration.reason) == (None, REASON_BAD_BOUNDS)
