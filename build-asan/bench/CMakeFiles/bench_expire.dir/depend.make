# Empty dependencies file for bench_expire.
# This may be replaced when dependencies are built.
