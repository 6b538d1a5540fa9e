"""The worker: intake and the district cores on the district work log, with their snapshots and recovery."""
