"""`finedefics run`: the paper's comparison as one command.

- `config`: the recipe as YAML holds it (`RunConfig`), light enough for `--help`.
- `recipe`: the recipe parsed and checked once into the commands' configs (`RunRecipe`).
- `variants`: the table of variants and stages the run trains and evaluates.
- `steps`: fingerprints, progress lines and the run log shared by every step.
- `pipeline`: the steps and their plan (`FinedeficsRun`, `run_pipeline`).
- `overrides`: recipe keys set from the command line.
- `default_model`: the embedded default's Finedefics model, as the demo uses it.
"""
