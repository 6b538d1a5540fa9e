"""Simulated days: the reports, shifts and field crews of a day, played live (`patrol up`, `patrol simulate`) and reported."""
