"""Error type raised for invalid user input (configs, distributions, schedules)."""


class ConfigError(ValueError):
    """Invalid input; the CLI prints its message as one line and exits non-zero."""
