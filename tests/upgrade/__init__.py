"""State directories written by earlier batchbox releases, and the script that writes them (see README.md)."""
