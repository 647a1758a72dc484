# Empty compiler generated dependencies file for test_engine_crash.
# This may be replaced when dependencies are built.
