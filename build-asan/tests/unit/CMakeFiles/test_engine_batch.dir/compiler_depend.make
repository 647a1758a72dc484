# Empty compiler generated dependencies file for test_engine_batch.
# This may be replaced when dependencies are built.
