"""Scaffolding for tests, the demo and the speed bench: random models laid out as the hub's
checkpoints, generated videos and footage, and stand-in backends. No core module imports it
(an import-linter contract); `build_random_model` is the one entry point for a random model."""
