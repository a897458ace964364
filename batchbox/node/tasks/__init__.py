"""Task scripts that run on a node; each module is standalone and may be copied there on its own."""
