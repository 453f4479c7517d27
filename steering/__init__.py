"""Refusal directions from activation differences, and the ways to steer a model with them.

A library (it never imports the pipeline or the CLI); the steering stage (``asru.stages.steer.stage``) is
one user of it.

==========================  ======================================================================
module                      job
==========================  ======================================================================
``steering.activations``    batched decoder-layer activations at last / post-instruction / mean /
                            all prompt positions, padding-safe, text and image prompts
``steering.directions``     diff-of-means refusal directions, refusal filtering, SVD subspace by
                            explained energy, retain-subspace projection
``steering.layer_select``   per-layer scores (induced refusal on held-out forget prompts, KL on
                            retain prompts) and the automatic layer choice
``steering.redirect``       RMU-style redirection trained into one layer's MLP down projection
``steering.hooks``          inference-time add / ablate / gated hooks (context managers)
``steering.bake``           directional ablation folded into the weights (orthogonalisation)
``steering.io``             direction files (safetensors + JSON sidecar) with a model check
==========================  ======================================================================
"""
