"""rft.rl: the RL loops. `grpo` and `ppo` each read top to bottom and keep only what differs (rollout
specifics, advantages, the update); `harness` runs what they share (processes, run folder, checkpoints,
engine, evaluation, logging), `config` holds `RLConfig`, `metrics` what they log, `distributed` the
collectives for several processes; the tensor maths is in `rft.losses`."""
