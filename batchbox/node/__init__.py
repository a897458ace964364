"""Node-side code of batchbox: stdlib only, runs on Python >= 3.9 inside a (emulated) Batch node."""
