"""Reports a person opens: static renders of the training curves, the one-page reports index,
the offline template for `dvc plots show`, and a headless-browser check of a page."""
