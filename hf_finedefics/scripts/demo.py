"""`finedefics demo`: serve the Gradio demo (`hf_finedefics.demo`, also the Hugging Face Space's app).

finedefics demo                                   # the embedded default model, built on first use
finedefics demo --model_name_or_path outputs/finedefics-merged
finedefics demo --model_name_or_path HuggingFaceM4/idefics2-8b --adapter user/finedefics-bird --host 0.0.0.0 --port 7860
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from trl import TrlParser

from hf_finedefics.demo import launch_demo
from hf_finedefics.scripts import run


@dataclass
class DemoArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Hub id or folder of a full checkpoint or an adapter; unset: $FINEDEFICS_MODEL, else the "
            "embedded default, built on first use."
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


def make_parser() -> TrlParser:
    return TrlParser((DemoArguments,), prog="finedefics demo")


def main(args: DemoArguments) -> None:
    logging.basicConfig(level=logging.INFO)
    launch_demo(
        model=args.model_name_or_path,
        adapter=args.adapter,
        server_name=args.host,
        server_port=args.port,
        share=args.share,
    )


if __name__ == "__main__":
    run(make_parser, main)
