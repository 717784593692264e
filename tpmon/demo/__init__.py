"""`tpmon demo`: everything on one machine, with the Customer Room in the terminal."""
