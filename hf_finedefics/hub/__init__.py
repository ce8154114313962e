"""Publishing Finedefics models: the model card (`model_card`) and the upload to the Hub (`upload`).

The names the trainers, the command line and the tests use are exported here; the training summary the card is
built from lives in `hf_finedefics.training_summary` (resuming reads it too) and is re-exported for them.
"""

from __future__ import annotations

from ..losses import FINEDEFICS_CITATION
from ..training_summary import (
    STAGE_TAGS,
    TRAINING_SUMMARY_NAME,
    framework_versions,
    load_training_summary,
    training_hyperparameters,
    training_stage,
    training_summary,
)
from .model_card import (
    AdapterCardInfo,
    base_model_license,
    build_model_card,
    evaluation_results,
    evaluation_table,
    hyperparameters,
)
from .upload import (
    MERGED_BASE_SUBFOLDER,
    PUBLISHED_FILES,
    STAGE1_SUBFOLDER,
    FinedeficsModelCardMixin,
    push_adapter,
    stage1_merge_record,
    upload_published_files,
    without_credentials,
)

__all__ = [
    "FINEDEFICS_CITATION",
    "MERGED_BASE_SUBFOLDER",
    "PUBLISHED_FILES",
    "STAGE1_SUBFOLDER",
    "STAGE_TAGS",
    "TRAINING_SUMMARY_NAME",
    "AdapterCardInfo",
    "FinedeficsModelCardMixin",
    "base_model_license",
    "build_model_card",
    "evaluation_results",
    "evaluation_table",
    "framework_versions",
    "hyperparameters",
    "load_training_summary",
    "push_adapter",
    "stage1_merge_record",
    "training_hyperparameters",
    "training_stage",
    "training_summary",
    "upload_published_files",
    "without_credentials",
]
