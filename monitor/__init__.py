"""touchpoint-monitor's pure core: events, catalog, engine, journeys, metrics.

Nothing in this package touches Kafka, Faust, the network or the wall clock: time is always an argument.
"""
