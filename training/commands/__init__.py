"""Sub-commands of ``python -m training``: one module each, exposing ``register(subparsers)``."""
