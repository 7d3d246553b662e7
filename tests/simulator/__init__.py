"""Tests of the bundled provider simulator."""
