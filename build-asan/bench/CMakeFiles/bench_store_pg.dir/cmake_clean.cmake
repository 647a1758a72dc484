file(REMOVE_RECURSE
  "CMakeFiles/bench_store_pg.dir/bench_store_pg.c.o"
  "CMakeFiles/bench_store_pg.dir/bench_store_pg.c.o.d"
  "bench_store_pg"
  "bench_store_pg.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/bench_store_pg.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
