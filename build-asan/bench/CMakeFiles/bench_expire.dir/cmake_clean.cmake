file(REMOVE_RECURSE
  "CMakeFiles/bench_expire.dir/bench_expire.c.o"
  "CMakeFiles/bench_expire.dir/bench_expire.c.o.d"
  "bench_expire"
  "bench_expire.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/bench_expire.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
