"""Literal architecture tables, one module per family (no torch imports)."""
