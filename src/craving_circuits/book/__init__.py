"""The book machinery: the run plan, provenance, page helpers, figures and the command line."""
