"""The live pipeline: a Faust application that runs the core engine on Kafka topics.

``settings`` reads the worker's settings, ``partitions`` holds one engine per partition and turns its
changes into table records, ``app`` wires topics, tables, agents, timers and web views. Rules are only
ever evaluated by the core.
"""
