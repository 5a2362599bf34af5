"""TokEngine's entry points: the CLI, `up`, the worker's composition, the demo, and the
embedded services they start. The top layer: nothing below imports it.

Below it: `api/` (HTTP), then `streams/`, `connectors/`, `sinks/` side by side, then
`topics/` (the wire contracts), then `core/` (pure definitions). README: "Map of the code".
"""
