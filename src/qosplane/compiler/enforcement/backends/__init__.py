"""One module per enforcement backend; `registry.py` lists them in the order they are asked."""
