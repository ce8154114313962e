"""Hugging Face Space entry point: the Finedefics Gradio demo (`hf_finedefics.demo`).

Runs with `python spaces_app/app.py`, honouring GRADIO_SERVER_NAME / GRADIO_SERVER_PORT and the model variables
FINEDEFICS_MODEL / FINEDEFICS_ADAPTER. The model is loaded (without them, the embedded default built) before the
app serves.
"""

import logging

from hf_finedefics.demo import launch_demo

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    launch_demo()
