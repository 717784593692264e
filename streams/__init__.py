"""The live pipeline: a Faust application that runs the core engine on Kafka topics.

``settings`` reads the worker's settings, ``partitions`` holds one engine per partition and turns its
changes into table records, ``consumer`` hands each fetch to its batch handler, ``app`` wires topics,
tables, handlers, timers and web views. Rules are only ever evaluated by the core.
"""
