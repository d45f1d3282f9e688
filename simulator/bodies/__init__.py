"""What the simulated engines serve on `/metrics`, and the hostile variants of those bodies."""
