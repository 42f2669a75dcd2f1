"""rft.envs: Gymnasium-style environments that pose tasks and grade answers (imports only rft.graders)."""
