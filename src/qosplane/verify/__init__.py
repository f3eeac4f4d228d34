"""Pure judgement: desired vs observed host state (drift), and measurement vs limit."""
