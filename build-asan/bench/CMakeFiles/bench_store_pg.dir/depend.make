# Empty dependencies file for bench_store_pg.
# This may be replaced when dependencies are built.
