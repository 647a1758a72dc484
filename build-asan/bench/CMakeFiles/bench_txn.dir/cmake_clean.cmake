file(REMOVE_RECURSE
  "CMakeFiles/bench_txn.dir/bench_txn.c.o"
  "CMakeFiles/bench_txn.dir/bench_txn.c.o.d"
  "bench_txn"
  "bench_txn.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/bench_txn.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
