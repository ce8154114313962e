"""Multiple-choice FGVR evaluation, the paper's Table 2 protocol (paper section 4.1; FOCI's option files, see data/mc_options/README.md).

`load_mc_items` reads a test set in its native layout, `evaluate_model` scores it with greedy generation
(answers read by `parse_choice`), with option-letter likelihood and with the likelihood of each option's name as
the open-set answer, and writes per-item predictions, per-dataset summaries and a Table-2-style report. `build_option_file` makes option files for new data.
"""

from .items import DATASETS, MultipleChoiceDataset, MultipleChoiceItem, load_mc_items, shipped_option_file
from .options import build_option_file, scan_imagefolder
from .parsing import parse_choice
from .report import build_report, summarize_results, write_report
from .runner import SCORER_NAMES, evaluate_model, score_items
from .scoring import (
    GenerationScorer,
    LikelihoodScorer,
    MultipleChoiceScorer,
    NameLikelihoodScorer,
    answer_log_likelihoods,
    multiple_choice_chat,
)

__all__ = [
    "DATASETS",
    "SCORER_NAMES",
    "GenerationScorer",
    "LikelihoodScorer",
    "MultipleChoiceDataset",
    "MultipleChoiceItem",
    "MultipleChoiceScorer",
    "NameLikelihoodScorer",
    "answer_log_likelihoods",
    "build_option_file",
    "build_report",
    "evaluate_model",
    "load_mc_items",
    "multiple_choice_chat",
    "parse_choice",
    "scan_imagefolder",
    "score_items",
    "shipped_option_file",
    "summarize_results",
    "write_report",
]
