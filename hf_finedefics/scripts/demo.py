"""`finedefics demo`: serve the Gradio demo of `spaces_app/app.py` (the Hugging Face Space's app).

finedefics demo                                   # the embedded default model, built on first use
finedefics demo --model outputs/finedefics-merged
finedefics demo --model HuggingFaceM4/idefics2-8b --adapter user/finedefics-bird --host 0.0.0.0 --port 7860
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from transformers import HfArgumentParser

# The Space's app lives beside the package in the source tree (the project installs with `pip install -e .`).
APP_FILE = Path(__file__).resolve().parents[2] / "spaces_app" / "app.py"
APP_MODULE = "finedefics_space_app"


@dataclass
class DemoArguments:
    model: str | None = field(
        default=None,
        metadata={
            "help": "Hub id or folder of a full checkpoint or an adapter; unset: $FINEDEFICS_MODEL, else the "
            "embedded default, built on first use."
        },
    )
    adapter: str | None = field(
        default=None,
        metadata={"help": "Hub id or folder of a LoRA adapter for --model; unset: $FINEDEFICS_ADAPTER."},
    )
    host: str | None = field(
        default=None, metadata={"help": "Address to listen on; unset: $GRADIO_SERVER_NAME, else 127.0.0.1."}
    )
    port: int | None = field(default=None, metadata={"help": "Port; unset: $GRADIO_SERVER_PORT, else 7860."})
    share: bool = field(default=False, metadata={"help": "Also serve through a temporary public gradio.live link."})


def load_app() -> ModuleType:
    if not APP_FILE.is_file():
        raise SystemExit(
            f"finedefics demo: {APP_FILE} is missing; it ships with the source tree, so install the project with "
            "`pip install -e .` from a clone, or run `python spaces_app/app.py` there."
        )
    if APP_MODULE in sys.modules:
        return sys.modules[APP_MODULE]
    spec = importlib.util.spec_from_file_location(APP_MODULE, APP_FILE)
    app = importlib.util.module_from_spec(spec)
    sys.modules[APP_MODULE] = app  # registered before it runs, as dataclasses look their module up
    spec.loader.exec_module(app)
    return app


def main(argv: list[str] | None = None) -> None:
    (args,) = HfArgumentParser(DemoArguments).parse_args_into_dataclasses(argv)
    logging.basicConfig(level=logging.INFO)
    load_app().launch_demo(
        model=args.model, adapter=args.adapter, server_name=args.host, server_port=args.port, share=args.share
    )


if __name__ == "__main__":
    main()
