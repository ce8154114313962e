"""Multiple-choice FGVR evaluation, the paper's Table 2 protocol (REFERENCE.md section 2)."""

from .items import DATASETS, MultipleChoiceDataset, MultipleChoiceItem, load_mc_items, shipped_option_file
from .parsing import parse_choice

__all__ = [
    "DATASETS",
    "MultipleChoiceDataset",
    "MultipleChoiceItem",
    "load_mc_items",
    "parse_choice",
    "shipped_option_file",
]
