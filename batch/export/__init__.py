"""Exports of the tables in the field's formats: MegaDetector batch JSON, COCO results, Camtrap DP."""
