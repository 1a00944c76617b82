"""Files and tables, shared by every layer above: I/O, BIDS naming, table schemas, atlases, the per-run mapper."""
