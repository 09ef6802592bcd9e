"""The shared library of the stages: typed configs, the registry helper, artifacts and safe writing, progress,
models and prompts, answer scoring, certainty, metrics and paired statistics, training-free abstention and hidden
states. Nothing here runs a stage; every stage builds on it."""
