"""The trainers of the three stages, after TRL: one `<method>_config.py` + `<method>_trainer.py` pair per stage, and
the model configuration every command shares. The public names are exported lazily by `hf_finedefics`."""
