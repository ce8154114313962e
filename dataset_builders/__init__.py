"""Build Finedefics training data: attribute triples, hard negatives and instructions (paper section 3.1)."""

from __future__ import annotations

from .sources import SOURCES, SourceFormatError, load_cub_attributes, load_source

__all__ = ["SOURCES", "SourceFormatError", "load_cub_attributes", "load_source"]
