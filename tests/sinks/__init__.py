"""Tests of the sink types (a package, so its module names cannot clash with other folders')."""
