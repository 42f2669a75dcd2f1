"""rft: reinforcement fine-tuning with verifiable rewards.

Kept import-light on purpose: `import rft.graders` must not pull in torch.
"""

__version__ = "0.1.0"
