"""The `tpmon` command line: thin adapters from files, terminals and processes to the core."""
