"""The verdict: planted truth, the claims registry, the claims ledger and the calibration of the claims' tests."""
