# Empty dependencies file for test_engine_recovery.
# This may be replaced when dependencies are built.
