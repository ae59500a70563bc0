"""What every router shares: request dependencies (deps.py), file answers (files.py) and the
lean reads by id (reads.py)."""
