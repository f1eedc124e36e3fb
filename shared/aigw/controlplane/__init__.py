"""The control plane as the data plane sees it: where saved configs and virtual keys come from."""
