"""rft.eval: held-out evaluation. In-training accuracy (`heldout`), evaluation runs with pass@k / maj@k and
paired comparisons (`evaluate`, their settings an `EvalSpec` from `spec`, statistics in `metrics`), graded
sample files (`samples`), and the difficulty pre-filter (`difficulty`). Imports engines, rollouts and envs;
never rft.rl or rft.app."""
