"""Refusal directions from activation differences, and the ways to steer a model with them."""
