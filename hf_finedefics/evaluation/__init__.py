"""FGVR evaluation: multiple choice, the paper's Table 2 protocol (paper section 4.1; FOCI's option files, see
data/mc_options/README.md), and open set.

`load_mc_items` reads a test set in its native layout, `evaluate_model` scores it with greedy generation
(answers read by `parse_choice`, or FOCI's way with `protocol="foci"`: see `format_question`, `foci_choice`), with
option-letter likelihood and with the likelihood of each option's name as the open-set answer (`name_likelihood`),
and writes per-item predictions, per-dataset summaries and a Table-2-style report. `evaluate_open_set` asks the
same images for the category without options and scores the free-text answers (`score_open_set`, nearest class
names by a sentence-transformers model) into the same report. `build_option_file` makes option files for new data.
A model behind an OpenAI-compatible endpoint (`ApiModel`) is scored by generation. Names are imported on first use.
"""

from .. import lazy_exports
from .names import DEFAULT_SIMILARITY_MODEL as DEFAULT_SIMILARITY_MODEL
from .names import MULTIPLE_CHOICE as MULTIPLE_CHOICE
from .names import OPEN_SET as OPEN_SET
from .names import SCORER_NAMES as SCORER_NAMES
from .names import TASKS as TASKS

_EXPORTS = {
    "DATASETS": "items",
    "MultipleChoiceDataset": "items",
    "MultipleChoiceItem": "items",
    "load_mc_items": "items",
    "shipped_option_file": "items",
    "load_similarity_model": "open_set",
    "normalize_answer": "open_set",
    "score_open_set": "open_set",
    "build_option_file": "options",
    "scan_imagefolder": "options",
    "foci_choice": "parsing",
    "parse_choice": "parsing",
    "build_report": "report",
    "summarize_results": "report",
    "write_report": "report",
    "evaluate_model": "runner",
    "evaluate_open_set": "runner",
    "score_items": "runner",
    "ApiGenerationScorer": "scoring",
    "ApiModel": "scoring",
    "GenerationScorer": "scoring",
    "LikelihoodScorer": "scoring",
    "MultipleChoiceScorer": "scoring",
    "NameLikelihoodScorer": "scoring",
    "answer_log_likelihoods": "scoring",
    "format_question": "scoring",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "DATASETS",
    "DEFAULT_SIMILARITY_MODEL",
    "MULTIPLE_CHOICE",
    "OPEN_SET",
    "SCORER_NAMES",
    "TASKS",
    "ApiGenerationScorer",
    "ApiModel",
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
    "normalize_answer",
    "parse_choice",
    "scan_imagefolder",
    "score_open_set",
    "score_items",
    "shipped_option_file",
    "summarize_results",
    "write_report",
]
