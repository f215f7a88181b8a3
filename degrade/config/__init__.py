"""Typed config schemas, the experiment schema, and composing a config outside Hydra's entry point."""
