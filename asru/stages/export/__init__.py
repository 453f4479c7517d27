"""The export stage: the last model as a plain checkpoint with a model card, verified by reloading it."""
