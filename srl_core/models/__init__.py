"""Pure torch.nn modules: location encoders (positional encoding + network) and tile encoders."""
