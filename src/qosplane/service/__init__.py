"""The operations the API exposes that can change a compiled plan.

Each module serves one OpenStack service (or the native hosts API) and wraps the store calls
that alter what a plan is compiled from in `plans.Replanner.changing`, which owns every
recompile. The API decides who may do what and renders the wire format; it never recompiles.
"""
