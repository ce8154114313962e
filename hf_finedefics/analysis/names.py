"""The analyses `finedefics analyze` and a run recipe choose from, in a module that imports nothing heavy: the
command line builds its --help from them without loading torch."""

ANALYSES = (
    "object_probe",
    "description_probe",
    "attribute_probe",
    "alignment",
    "discriminability",
    "tsne",
    "confusion",
)
