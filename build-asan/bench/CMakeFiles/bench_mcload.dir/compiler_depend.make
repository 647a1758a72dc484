# Empty compiler generated dependencies file for bench_mcload.
# This may be replaced when dependencies are built.
