# Empty compiler generated dependencies file for test_engine_once.
# This may be replaced when dependencies are built.
