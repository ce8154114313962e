"""FGVR evaluation: multiple choice, the paper's Table 2 protocol (paper section 4.1; FOCI's option files, see
data/mc_options/README.md), and open set.

`load_mc_items` reads a test set in its native layout, `evaluate_model` scores it with greedy generation
(answers read by `parse_choice`, or FOCI's way with `protocol="foci"`: see `format_question`, `foci_choice`), with
option-letter likelihood and with the likelihood of each option's name as the open-set answer (`name_likelihood`),
and writes per-item predictions, per-dataset summaries and a Table-2-style report. `evaluate_open_set` asks the
same images for the category without options and scores the free-text answers (`score_open_set`, nearest class
names by a sentence-transformers model) into the same report. `build_option_file` makes option files for new data.
"""

from .items import DATASETS, MultipleChoiceDataset, MultipleChoiceItem, load_mc_items, shipped_option_file
from .open_set import DEFAULT_SIMILARITY_MODEL, OPEN_SET, load_similarity_model, normalize_answer, score_open_set
from .options import build_option_file, scan_imagefolder
from .parsing import foci_choice, parse_choice
from .report import build_report, summarize_results, write_report
from .runner import MULTIPLE_CHOICE, SCORER_NAMES, TASKS, evaluate_model, evaluate_open_set, score_items
from .scoring import (
    GenerationScorer,
    LikelihoodScorer,
    MultipleChoiceScorer,
    NameLikelihoodScorer,
    answer_log_likelihoods,
    format_question,
    multiple_choice_chat,
)

__all__ = [
    "DATASETS",
    "DEFAULT_SIMILARITY_MODEL",
    "MULTIPLE_CHOICE",
    "OPEN_SET",
    "SCORER_NAMES",
    "TASKS",
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
    "evaluate_open_set",
    "foci_choice",
    "format_question",
    "load_mc_items",
    "load_similarity_model",
    "multiple_choice_chat",
    "normalize_answer",
    "parse_choice",
    "scan_imagefolder",
    "score_open_set",
    "score_items",
    "shipped_option_file",
    "summarize_results",
    "write_report",
]
