"""One module per CLI area; each function takes the parsed arguments and returns an exit code."""
