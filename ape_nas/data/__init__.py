"""Data: benchmarks (readers), preprocessing into windows, and subject-grouped splits. No torch here."""
