"""The model-server protocol: serve any adapter over HTTP, or a model in its own environment."""
