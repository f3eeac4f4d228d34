"""Intent: what was declared, in canonical units. Standard library only."""
