"""The folder `evaluate.load` reads; a package only so that installs ship the metric script."""
