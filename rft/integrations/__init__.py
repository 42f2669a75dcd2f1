"""rft.integrations: adapters that plug rft's graders and task suites into other trainers.

Each submodule imports its framework only when used: ``from rft.integrations.trl import reward_func``.
"""

__all__: list[str] = []
