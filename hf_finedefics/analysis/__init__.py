"""The paper's analyses (section 2, appendix A.2-A.3): feature probes, object-category alignment quality,
discriminability, t-SNE maps and confusion matrices. Names are imported on first use."""

from .. import lazy_exports
from .names import ANALYSES as ANALYSES

_EXPORTS = {
    "DESCRIPTION_PROMPT": "features",
    "generate_category_descriptions": "features",
    "mask_class_name": "features",
    "plot_confusion_matrix": "figures",
    "plot_tsne": "figures",
    "alignment_quality": "metrics",
    "confusion_matrix": "metrics",
    "discriminability": "metrics",
    "linear_probe_accuracy": "metrics",
    "read_predictions": "metrics",
    "attribute_description_probe": "runner",
    "report_markdown": "runner",
    "run_analysis": "runner",
}

__all__ = sorted(["ANALYSES", *_EXPORTS])
__getattr__ = lazy_exports(__name__, _EXPORTS)
