"""Fetal head biometry (issue 21): measuring the skull on brain-plane images."""
