"""The host agent: watch desired state, reconcile, report. Decides retry vs report."""
