"""Biometry's ML core: plain Python and NumPy, no Django, no app.

The ellipse fit and head measurements (`ellipse`), the INTERGROWTH-21st head circumference standard and
gestational age from HC (`growth`) and the DICOM ultrasound-region pixel size (`calibration`). The pipeline,
worker and pages of issue 21 use these; nothing here knows about models, jobs or files.
"""
