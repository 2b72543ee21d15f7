"""HTTP adapter of the bank: thin routes over the use cases, one module per concern."""
