"""What every router shares: request dependencies (deps.py) and file answers (files.py)."""
