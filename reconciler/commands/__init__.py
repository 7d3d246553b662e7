"""The work behind each command: load inputs, call the core and the edges, return results.

The CLI (``reconciler.cli``) only parses arguments, calls these, prints and sets exit codes.
"""
