# Empty compiler generated dependencies file for bench_txn.
# This may be replaced when dependencies are built.
