"""Recipes: a task, its model, its loss and its profile-sized TrainConfig, shared by the CLI and notebooks."""
