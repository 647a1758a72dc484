# Empty compiler generated dependencies file for test_engine_faults.
# This may be replaced when dependencies are built.
