"""The steer stage: refusal direction, layer selection, redirection baked into the weights."""
