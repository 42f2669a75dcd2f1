"""`python -m rft ...` is the `rft` command (e.g. under `accelerate launch -m rft train grpo ...`)."""

from rft.app.cli import main

main()
