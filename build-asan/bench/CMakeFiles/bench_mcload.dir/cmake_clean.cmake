file(REMOVE_RECURSE
  "CMakeFiles/bench_mcload.dir/bench_mcload.c.o"
  "CMakeFiles/bench_mcload.dir/bench_mcload.c.o.d"
  "bench_mcload"
  "bench_mcload.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/bench_mcload.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
