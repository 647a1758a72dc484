# Empty compiler generated dependencies file for test_engine_tail.
# This may be replaced when dependencies are built.
