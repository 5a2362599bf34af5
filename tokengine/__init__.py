"""TokEngine: cross-cutting pieces (settings, assets, money, embedded services, CLI).

The event contracts live in `topics/` and `avro/`, stream processing in `streams/`,
the outside world in `connectors/`, materialisation in `sinks/`.
"""
