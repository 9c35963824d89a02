"""One-off studies behind a design choice (`python -m benchmarks.studies.NAME`); not part of `build.py bench`."""
