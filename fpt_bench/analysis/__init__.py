"""Looking inside results: plots and attention maps."""
