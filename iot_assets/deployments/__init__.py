"""Code locations for deployments whose compute is not this process (selected by workspace.yaml)."""
