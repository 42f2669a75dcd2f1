"""rft.app: the layer that wires everything: the `rft` command line, pipelines (`rft run`, `rft demo`),
reports, the grader audit, the tiny model server. Nothing else in the project imports it."""
