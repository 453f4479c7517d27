"""The offline demo VLM: the untrained model, its teaching loop and the vision alignment."""
