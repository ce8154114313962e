"""`finedefics demo`: serve the Gradio demo (`hf_finedefics.demo`, also the Hugging Face Space's app).

finedefics demo                                   # ./finedefics-default's model, else the embedded default's
finedefics demo --model_name_or_path outputs/finedefics-merged
finedefics demo --model_name_or_path HuggingFaceM4/idefics2-8b --adapter user/finedefics-bird --host 0.0.0.0 --port 7860
finedefics demo --model_name_or_path HuggingFaceM4/idefics2-8b --processor_kwargs '{"do_image_splitting": false}'
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from trl import TrlParser

from hf_finedefics.scripts import run
from hf_finedefics.trainer.model_config import parse_processor_kwargs


@dataclass
class DemoArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Hub id or folder of a full checkpoint or an adapter; unset: $FINEDEFICS_MODEL, else the "
            "Finedefics model of ./finedefics-default when that `finedefics run` is finished, else the embedded "
            "default, built on first use (the log says which)."
        },
    )
    adapter: str | None = field(
        default=None,
        metadata={"help": "Hub id or folder of a LoRA adapter for --model_name_or_path; unset: $FINEDEFICS_ADAPTER."},
    )
    host: str | None = field(
        default=None, metadata={"help": "Address to listen on; unset: $GRADIO_SERVER_NAME, else 127.0.0.1."}
    )
    port: int | None = field(default=None, metadata={"help": "Port; unset: $GRADIO_SERVER_PORT, else 7860."})
    share: bool = field(default=False, metadata={"help": "Also serve through a temporary public gradio.live link."})
    processor_kwargs: dict[str, Any] | str | None = field(
        default_factory=dict,
        metadata={
            "help": "Keyword arguments for `AutoProcessor.from_pretrained`, e.g. {do_image_splitting: false} for an "
            "Idefics2 base (YAML mapping, or JSON on the command line); an adapter folder's own processor is used "
            "when it has one."
        },
    )

    def __post_init__(self):
        self.processor_kwargs = parse_processor_kwargs(self.processor_kwargs)


def make_parser() -> TrlParser:
    return TrlParser((DemoArguments,), prog="finedefics demo")


def main(args: DemoArguments) -> None:
    from hf_finedefics.demo import launch_demo

    logging.basicConfig(level=logging.INFO)
    launch_demo(
        model=args.model_name_or_path,
        adapter=args.adapter,
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        processor_kwargs=args.processor_kwargs,
    )


if __name__ == "__main__":
    run(make_parser, main)
