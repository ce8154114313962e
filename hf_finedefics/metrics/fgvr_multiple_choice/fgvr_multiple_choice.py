"""FGVR multiple-choice accuracy as an `evaluate` metric, loadable offline by its local path:

    metric = evaluate.load("path/to/hf_finedefics/metrics/fgvr_multiple_choice")
    metric.compute(predictions=["B", "It is a Pug."], references=[1, 0], options=[["Pug", "Boxer"]] * 2)

Predictions are the model's answers as text, read with `hf_finedefics.evaluation.parse_choice` against
each question's shown options; references are the indices of the true options.
"""

import datasets
import evaluate

from hf_finedefics.evaluation import parse_choice

_DESCRIPTION = """Accuracy of free-text answers to multiple-choice fine-grained recognition questions (the
Finedefics / FOCI Table 2 protocol), with the rate of answers that name no option."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): generated answers ("B", "D. Chihuahua", "It is a Japanese spaniel.").
    references (`list[int]`): index of the true option of each question.
    options (`list[list[str]]`): the options of each question in the order they were shown.
Returns:
    accuracy (`float`): fraction of answers that select the true option.
    failure_rate (`float`): fraction of answers that select no option (counted as wrong).
Examples:
    >>> metric = evaluate.load("hf_finedefics/metrics/fgvr_multiple_choice")
    >>> metric.compute(predictions=["(A)", "no idea"], references=[0, 1], options=[["Pug", "Boxer"]] * 2)
    {'accuracy': 0.5, 'failure_rate': 0.5}
"""

_CITATION = """@inproceedings{he2025finedefics,
  title={Analyzing and Boosting the Power of Fine-Grained Visual Recognition for Multi-modal Large Language Models},
  author={He, Hulingxiao and Li, Geng and Geng, Zijun and Xu, Jinglin and Peng, Yuxin},
  booktitle={ICLR},
  year={2025}
}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class FgvrMultipleChoice(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("int32")}
            ),
        )

    def _compute(self, predictions, references, options):
        if len(options) != len(predictions):
            raise ValueError(f"Got {len(predictions)} predictions but options for {len(options)} questions.")
        chosen = [parse_choice(text, shown) for text, shown in zip(predictions, options)]
        total = len(chosen)
        return {
            "accuracy": sum(choice == reference for choice, reference in zip(chosen, references)) / total,
            "failure_rate": sum(choice is None for choice in chosen) / total,
        }
