file(REMOVE_RECURSE
  "../test_engine_batch"
  "../test_engine_batch.pdb"
  "CMakeFiles/test_engine_batch.dir/test_engine_batch.c.o"
  "CMakeFiles/test_engine_batch.dir/test_engine_batch.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_engine_batch.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
