"""rft.rl: the RL loops. `grpo` and `ppo` each read top to bottom over what they share (`common`: configs,
prompt order, metrics; `distributed`: several processes); the tensor maths is in `rft.losses`."""
