"""The paper's analyses (section 2, appendix A.2-A.3): feature probes, object-category alignment quality,
discriminability, t-SNE maps and confusion matrices."""

from .features import DESCRIPTION_PROMPT, generate_category_descriptions, mask_class_name
from .figures import plot_confusion_matrix, plot_tsne
from .metrics import (
    alignment_quality,
    confusion_matrix,
    discriminability,
    linear_probe_accuracy,
    read_predictions,
)
from .runner import ANALYSES, attribute_description_probe, report_markdown, run_analysis

__all__ = [
    "ANALYSES",
    "DESCRIPTION_PROMPT",
    "alignment_quality",
    "attribute_description_probe",
    "confusion_matrix",
    "discriminability",
    "generate_category_descriptions",
    "linear_probe_accuracy",
    "mask_class_name",
    "plot_confusion_matrix",
    "plot_tsne",
    "read_predictions",
    "report_markdown",
    "run_analysis",
]
