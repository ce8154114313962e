"""Scoring a dataset in batches, with per-item results cached to JSON lines so a rerun resumes.

`evaluate_model` and `evaluate_open_set` keep that cache by what produced the results: the model's fingerprint (its
weights and processor settings) and the scoring settings, under ``<output_dir>/cache/``. The model's name only labels
the copies under ``predictions/<name>/`` and ``summaries/<name>/`` that the report and the analyses read, so a second
model evaluated under the name of a first is scored on its own, and the first's results are reused when it comes back.

Under `accelerate launch` (or torchrun) each process scores every n-th item not yet cached into a shard beside the
cache (``<cache>.rank<i>.jsonl``); the main process merges the shards into the cache and alone writes predictions,
summaries and the report, so they equal a one-process run's. Shards a killed run left are merged when the next run
starts, whatever its number of processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from PIL import Image
from tqdm.auto import tqdm

from dataset_builders.images import open_rgb
from dataset_builders.prompts import open_set_prompt

from ..chat import open_set_chat
from .config import EvaluateArguments
from .items import MultipleChoiceItem, get_dataset
from .names import DEFAULT_SIMILARITY_MODEL, MULTIPLE_CHOICE, OPEN_SET, SCORER_NAMES
from .open_set import (
    load_similarity_model,
    score_open_set_answers,
    summarize_open_set,
)
from .report import result_key, summarize_results, summary_path, write_report
from .scoring import (
    ApiGenerationScorer,
    ApiModel,
    GenerationScorer,
    LikelihoodScorer,
    MultipleChoiceScorer,
    NameLikelihoodScorer,
    Protocol,
)

logger = logging.getLogger(__name__)

# Beside a name's predictions: the fingerprint of the model whose results they are.
MODEL_FINGERPRINT_FILE = "model_fingerprint.txt"


def process_state() -> PartialState:
    """The processes this evaluation runs on (one unless launched by accelerate or torchrun). Without an
    accelerator they are CPU processes joined by gloo, which accelerate forms only when told it runs on CPU."""
    return PartialState(cpu=not torch.accelerator.is_available())


def _batches(items: list[MultipleChoiceItem], batch_size: int) -> Iterator[list[MultipleChoiceItem]]:
    for start in range(0, len(items), batch_size):
        yield items[start : start + batch_size]


def read_cached_results(path: Path) -> dict[str, dict[str, Any]]:
    """The results already written to `path`, by image id. A line cut short by an interruption is dropped
    from the file, so appending resumes on a clean line."""
    if not path.exists():
        return {}
    content = path.read_text(encoding="utf-8")
    if content and not content.endswith("\n"):
        content = content[: content.rfind("\n") + 1]
        path.write_text(content, encoding="utf-8")
    records = (json.loads(line) for line in content.splitlines() if line)
    return {record["image"]: record for record in records}


def shard_path(results_path: Path, process_index: int) -> Path:
    """Where process `process_index` of a data-parallel run appends its results before they are merged."""
    return results_path.with_name(f"{results_path.stem}.rank{process_index}.jsonl")


def merge_shards(results_path: Path) -> None:
    """Append the records of the process shards of `results_path` (a data-parallel run's, maybe a killed one's) that
    it does not hold yet, then delete the shards."""
    shards = sorted(results_path.parent.glob(f"{results_path.stem}.rank*.jsonl"))
    if not shards:
        return
    done = read_cached_results(results_path)
    with open(results_path, "a", encoding="utf-8") as results_file:
        for shard in shards:
            for image_id, record in read_cached_results(shard).items():
                if image_id not in done:
                    results_file.write(json.dumps(record) + "\n")
                    done[image_id] = record
    for shard in shards:
        shard.unlink()


def _cached_results(
    items: list[MultipleChoiceItem],
    results_path: str | os.PathLike,
    score_batch: Callable[[list[MultipleChoiceItem]], list[dict[str, Any]]],
    asked: Callable[[MultipleChoiceItem], dict[str, Any]],
    *,
    batch_size: int,
    description: str | None,
) -> list[dict[str, Any]]:
    """`score_batch` over the `items` not yet in `results_path`, appending one JSON line per item; returns the
    results of `items` in their order. `asked(item)` is what the model is shown (fields of each record): a
    cache written under another protocol would mix two protocols in one number, so it is refused. Under several
    processes each scores every n-th pending item into its shard, merged into `results_path` at the end."""
    state = process_state()
    results_path = Path(results_path)
    # The main process repairs the cache (a cut line, shards of a killed run) before the others read it.
    with state.main_process_first():
        if state.is_main_process:
            results_path.parent.mkdir(parents=True, exist_ok=True)
            merge_shards(results_path)
        done = read_cached_results(results_path)
    for item in items:
        if item.image_id in done and any(done[item.image_id].get(key) != value for key, value in asked(item).items()):
            raise ValueError(
                f"{results_path} holds {item.image_id} asked otherwise than this run asks it "
                "(another seed, option file or question?); use a fresh output directory."
            )
    pending = [item for item in items if item.image_id not in done]
    mine = pending[state.process_index :: state.num_processes]
    target = results_path if state.num_processes == 1 else shard_path(results_path, state.process_index)
    with (
        open(target, "a", encoding="utf-8") as results_file,
        tqdm(
            total=len(items),
            initial=len(items) - len(pending),
            desc=description,
            unit="item",
            disable=not state.is_main_process,
        ) as progress,
    ):
        for batch in _batches(mine, batch_size):
            for item, record in zip(batch, score_batch(batch)):
                results_file.write(json.dumps(record) + "\n")
                done[item.image_id] = record
            results_file.flush()
            # The main process's progress stands for all of them: their shards differ by one item at most.
            progress.update(len(batch) * state.num_processes)
    if state.num_processes > 1:
        state.wait_for_everyone()
        with state.main_process_first():
            if state.is_main_process:
                merge_shards(results_path)
            done = read_cached_results(results_path)
    return [done[item.image_id] for item in items]


def _images(batch: list[MultipleChoiceItem]) -> list[Image.Image]:
    return [open_rgb(item.image) for item in batch]


def score_items(
    scorer: MultipleChoiceScorer,
    items: list[MultipleChoiceItem],
    results_path: str | os.PathLike,
    *,
    superclass: str | None,
    seed: int = 0,
    batch_size: int = 8,
    description: str | None = None,
    protocol: Protocol = "ours",
) -> list[dict[str, Any]]:
    """Score `items` with `scorer`, appending one JSON line per item to `results_path`; items already there
    are not scored again. Returns the results of `items`, in their order. `protocol` words the question ("ours"
    or "foci"); a generation scorer reads answers by its own protocol.

    Each result: image id, true class, the options as shown, the index of the true one (``answer``), the
    chosen index (``prediction``, None for an unreadable answer) and the scorer's own fields.
    """

    def score_batch(batch: list[MultipleChoiceItem]) -> list[dict[str, Any]]:
        options = [item.shuffled_options(seed) for item in batch]
        chats = [scorer.chat(shown, superclass, protocol) for shown in options]
        return [
            {
                "image": item.image_id,
                "groundtruth": item.groundtruth,
                "options": shown,
                "answer": shown.index(item.groundtruth),
                **scored,
            }
            for item, shown, scored in zip(batch, options, scorer.score(_images(batch), chats, options))
        ]

    return _cached_results(
        items,
        results_path,
        score_batch,
        lambda item: {"options": item.shuffled_options(seed)},
        batch_size=batch_size,
        description=description,
    )


def answer_open_set(
    generator: GenerationScorer,
    items: list[MultipleChoiceItem],
    results_path: str | os.PathLike,
    *,
    superclass: str | None,
    batch_size: int = 8,
    description: str | None = None,
) -> list[dict[str, Any]]:
    """Ask each item the open-set question (no options) with greedy decoding, caching like `score_items`.
    Each result: image id, true class, the question and the ``response``."""
    question = open_set_prompt(superclass)

    def answer_batch(batch: list[MultipleChoiceItem]) -> list[dict[str, Any]]:
        # An endpoint (no processor here) renders the chat itself from the bare question.
        chat = question if generator.processor is None else open_set_chat(generator.processor, superclass)
        chats = [chat] * len(batch)
        return [
            {"image": item.image_id, "groundtruth": item.groundtruth, "question": question, "response": response}
            for item, response in zip(batch, generator.generate(_images(batch), chats))
        ]

    return _cached_results(
        items,
        results_path,
        answer_batch,
        lambda item: {"question": question},
        batch_size=batch_size,
        description=description,
    )


def predictions_path(output_dir: str | os.PathLike, model: str, dataset: str, scorer: str) -> Path:
    return Path(output_dir) / "predictions" / model / f"{dataset}.{scorer}.jsonl"


def model_fingerprint(model: torch.nn.Module, processor: Any) -> str:
    """What a model's answers depend on: every weight and buffer (name, dtype, shape and bytes, an adapter's
    included) and the processor's settings and chat template. Reads all weights once (seconds for billions of
    parameters); weights offloaded to the meta device count by name and shape only."""
    digest = hashlib.sha256(processor.to_json_string().encode())
    digest.update(str(getattr(processor, "chat_template", None)).encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        if tensor.device.type != "meta":
            digest.update(tensor.detach().reshape(-1).view(torch.uint8).cpu().numpy())
    return digest.hexdigest()[:16]


def cache_path(output_dir: str | os.PathLike, fingerprint: str, dataset: str, key: str, **settings: Any) -> Path:
    """The resume cache of `dataset` scored as `key` by the model of `fingerprint` under `settings` (what else
    changes the answers: seed, question noun, generation length)."""
    settings_digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return Path(output_dir) / "cache" / fingerprint / f"{dataset}.{key}.{settings_digest}.jsonl"


def claim_model_name(output_dir: str | os.PathLike, model_name: str, fingerprint: str) -> None:
    """Make `model_name` label the model of `fingerprint` in `output_dir`. Result files the name held for another
    model (or for one evaluated before fingerprints were kept) move to ``superseded/<its fingerprint>/``, so the
    report never mixes two models in one row; the results themselves stay in the cache."""
    output_dir = Path(output_dir)
    record = output_dir / "predictions" / model_name / MODEL_FINGERPRINT_FILE
    previous = record.read_text().strip() if record.is_file() else None
    if previous != fingerprint:
        stale = [
            *(output_dir / "predictions" / model_name).glob("*.jsonl"),
            *(output_dir / "summaries" / model_name).glob("*.json"),
        ]
        if stale:
            superseded = output_dir / "superseded" / (previous or "unfingerprinted")
            logger.warning(
                "%s in %s named the results of another model (fingerprint %s, now %s): its files move to %s and "
                "this model is scored on its own.",
                model_name,
                output_dir,
                previous,
                fingerprint,
                superseded,
            )
            for path in stale:
                target = superseded / path.relative_to(output_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                path.replace(target)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(fingerprint + "\n", encoding="utf-8")


def evaluate_model(
    model: Any,
    processor: Any,
    datasets: dict[str, list[MultipleChoiceItem]],
    output_dir: str | os.PathLike,
    *,
    model_name: str,
    scorers: tuple[str, ...] = SCORER_NAMES,
    seed: int = 0,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    superclasses: dict[str, str] | None = None,
    protocol: Protocol = "ours",
) -> dict[str, dict[str, dict[str, Any]]]:
    """Score every dataset (name -> items) with every scorer, write per-item predictions, per-dataset
    summaries and the report of `output_dir`; return ``{scorer: {dataset: summary}}``.

    `model` is a loaded model with its `processor`, or an `ApiModel` (processor None; generation only).
    `model_name` labels the files, so several models evaluated into one `output_dir` share one report; the results
    are cached by the model's fingerprint (see the module's docstring).
    `superclasses` names the noun of the question for datasets that have none (``imagefolder``). `protocol`
    "foci" asks, decodes (`max_new_tokens` default 10, else 32) and reads answers as FOCI does; its results are
    kept beside ours (keys ``<scorer>@foci``), so one report shows both protocols.
    """
    unknown = set(scorers) - set(SCORER_NAMES)
    if unknown:
        raise ValueError(f"Unknown scorers {sorted(unknown)}; choose from {', '.join(SCORER_NAMES)}.")
    if isinstance(model, ApiModel) and (reading_logits := sorted(set(scorers) - {"generation"})):
        raise ValueError(
            f"The scorers {reading_logits} read the model's logits, which the endpoint {model.base_url} does not "
            "return: score it with the generation scorer alone, or load the model here."
        )
    _check_model_name(model_name)
    state = process_state()
    fingerprint = _fingerprint(model, processor)
    _claim_on_main(state, output_dir, model_name, fingerprint)
    make_scorer = {
        "generation": lambda: _generator(model, processor, max_new_tokens, protocol),
        "likelihood": lambda: LikelihoodScorer(model, processor),
        "name_likelihood": lambda: NameLikelihoodScorer(model, processor),
    }
    summaries: dict[str, dict[str, dict[str, Any]]] = {}
    for scorer_name in scorers:
        scorer = make_scorer[scorer_name]()
        key = result_key(scorer_name, protocol)
        for dataset, items in datasets.items():
            superclass = (superclasses or {}).get(dataset) or get_dataset(dataset).superclass
            # Only generation reads `max_new_tokens`: a new length leaves the likelihood scorers' cache valid.
            length = max_new_tokens if scorer_name == "generation" else None
            results = score_items(
                scorer,
                items,
                cache_path(output_dir, fingerprint, dataset, key, superclass=superclass, seed=seed, length=length),
                superclass=superclass,
                seed=seed,
                batch_size=batch_size,
                description=f"{dataset} ({key})",
                protocol=protocol,
            )
            summary = summarize_results(results)
            if state.is_main_process:
                _write_jsonl(predictions_path(output_dir, model_name, dataset, key), results)
                _write_json(summary_path(output_dir, model_name, dataset, key), summary)
            summaries.setdefault(scorer_name, {})[dataset] = summary
    if state.is_main_process:
        write_report(output_dir)
    return summaries


def _fingerprint(model: Any, processor: Any) -> str:
    return model.fingerprint if isinstance(model, ApiModel) else model_fingerprint(model, processor)


def _generator(model: Any, processor: Any, max_new_tokens: int | None, protocol: Protocol) -> GenerationScorer:
    """The generation scorer of a loaded model, or of an `ApiModel`."""
    if isinstance(model, ApiModel):
        return ApiGenerationScorer(model, max_new_tokens=max_new_tokens, protocol=protocol)
    return GenerationScorer(model, processor, max_new_tokens=max_new_tokens, protocol=protocol)


def _claim_on_main(state: PartialState, output_dir: str | os.PathLike, model_name: str, fingerprint: str) -> None:
    """`claim_model_name` by the main process, before any process scores."""
    if state.is_main_process:
        claim_model_name(output_dir, model_name, fingerprint)
    state.wait_for_everyone()


def _check_model_name(model_name: str) -> None:
    if not model_name or "/" in model_name or "\\" in model_name:
        raise ValueError(f"`model_name` names a folder of results and cannot contain a path separator: {model_name!r}")


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


def dataset_class_names(items: list[MultipleChoiceItem]) -> list[str]:
    """Every class an item of the dataset names (as truth or option), sorted: the candidates of open-set
    matching. The shipped option files show every class of their dataset."""
    return sorted({name for item in items for name in (item.groundtruth, *item.options)})


def evaluate_open_set(
    model: Any,
    processor: Any,
    datasets: dict[str, list[MultipleChoiceItem]],
    output_dir: str | os.PathLike,
    *,
    model_name: str,
    batch_size: int = 8,
    max_new_tokens: int = 32,
    superclasses: dict[str, str] | None = None,
    similarity_model: str = DEFAULT_SIMILARITY_MODEL,
) -> dict[str, dict[str, Any]]:
    """Ask every dataset (name -> items) the open-set question, score the answers (see `open_set`), write the
    per-item answers (the resume cache), their scores, per-dataset summaries and the report of `output_dir`;
    return ``{dataset: summary}``. Arguments as `evaluate_model`; `similarity_model` embeds answers and names.
    Under several processes the main one alone scores the answers; the others return the summaries it wrote."""
    _check_model_name(model_name)
    state = process_state()
    fingerprint = _fingerprint(model, processor)
    _claim_on_main(state, output_dir, model_name, fingerprint)
    generator = _generator(model, processor, max_new_tokens, "ours")
    embedder = None
    summaries = {}
    for dataset, items in datasets.items():
        superclass = (superclasses or {}).get(dataset) or get_dataset(dataset).superclass
        answers = answer_open_set(
            generator,
            items,
            cache_path(output_dir, fingerprint, dataset, OPEN_SET, superclass=superclass, length=max_new_tokens),
            superclass=superclass,
            batch_size=batch_size,
            description=f"{dataset} ({OPEN_SET})",
        )
        if not state.is_main_process:  # the answers are scored once, by the main process
            continue
        answers_path = predictions_path(output_dir, model_name, dataset, OPEN_SET)
        _write_jsonl(answers_path, answers)
        # Loaded once the VLM has answered, so a failing similarity model never costs a generation pass.
        embedder = embedder or load_similarity_model(similarity_model)
        class_names = dataset_class_names(items)
        scored = score_open_set_answers(answers, class_names, embedder)
        _write_jsonl(answers_path.with_suffix(".scores.jsonl"), scored)
        summary = summarize_open_set(scored, class_names, similarity_model)
        _write_json(summary_path(output_dir, model_name, dataset, OPEN_SET), summary)
        summaries[dataset] = summary
    if state.is_main_process:
        write_report(output_dir)
    state.wait_for_everyone()
    if not state.is_main_process:
        summaries = {
            dataset: json.loads(summary_path(output_dir, model_name, dataset, OPEN_SET).read_text())
            for dataset in datasets
        }
    return summaries


def load_test_sets(args: EvaluateArguments) -> dict[str, list[MultipleChoiceItem]]:
    """The test sets `args` names ({source: items}), each read in its native layout with its option file (the
    shipped one, the folder's own, `options_files`, or one built with `clip_model`), before any model is loaded:
    a missing image or option file fails here, not after the first dataset has been scored."""
    from dataset_builders.sources import parse_pairs, source_folders

    from .items import FOLDER_OPTION_FILE, default_option_file, load_mc_items
    from .options import build_option_file, scan_imagefolder

    folders = source_folders(args.sources, args.data_dir, parse_pairs(args.source_dirs))
    options_files = parse_pairs(args.options_files)
    test_sets = {}
    for name in args.sources:
        data_dir = folders[name]
        if name not in options_files and default_option_file(name, data_dir) is None:
            if args.clip_model is None:
                raise ValueError(
                    f"{name} has no shipped option file and {Path(data_dir) / FOLDER_OPTION_FILE} does not exist: "
                    f"pass --options_files {name}=PATH, or --clip_model to build one."
                )
            options_files[name] = str(Path(args.output_dir) / "options" / f"{name}.json")
            logger.info("Building %s options with %s", options_files[name], args.clip_model)
            build_option_file(scan_imagefolder(data_dir), data_dir, args.clip_model, options_files[name])
        test_sets[name] = load_mc_items(name, data_dir, options_files.get(name))
        logger.info("%s: %d test images under %s", name, len(test_sets[name]), data_dir)
    return test_sets


def run_evaluation(
    args: EvaluateArguments,
    model: Any,
    processor: Any,
    test_sets: dict[str, list[MultipleChoiceItem]],
    model_name: str,
    superclasses: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Evaluate `model` as `args` say (`finedefics evaluate` and a run's evaluation step alike): each multiple-choice
    scorer and/or the open set, into `args.output_dir`. Returns {scorer: {dataset: summary}}, the open set's under
    `OPEN_SET`. `superclasses` ({dataset: noun asked about}) defaults to `args.superclass` for an imagefolder."""
    if superclasses is None and args.superclass:
        superclasses = {"imagefolder": args.superclass}
    common = {
        "model_name": model_name,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "superclasses": superclasses,
    }
    summaries: dict[str, dict[str, Any]] = {}
    if MULTIPLE_CHOICE in args.tasks:
        summaries = evaluate_model(
            model,
            processor,
            test_sets,
            args.output_dir,
            scorers=tuple(args.scorers),
            seed=args.seed,
            protocol=args.protocol,
            **common,
        )
        for scorer, by_dataset in summaries.items():
            for name, summary in by_dataset.items():
                logger.info(
                    "%s %s (%s protocol): accuracy %.2f%%, failure rate %.2f%%",
                    name,
                    scorer,
                    args.protocol,
                    summary["accuracy"],
                    summary["failure_rate"],
                )
    if OPEN_SET in args.tasks:
        open_set = summaries[OPEN_SET] = evaluate_open_set(
            model, processor, test_sets, args.output_dir, similarity_model=args.similarity_model, **common
        )
        for name, summary in open_set.items():
            logger.info(
                "%s open set: exact %.2f%%, contains %.2f%%, nearest top-1 %.2f%%, top-5 %.2f%%, mean cosine %.3f",
                name,
                summary["exact"],
                summary["contains"],
                summary["top1"],
                summary["top5"],
                summary["mean_cosine"],
            )
    return summaries
