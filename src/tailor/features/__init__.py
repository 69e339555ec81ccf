"""Features: SQL over the warehouse, the Feast repo, online reads, training sets, live pushes."""
