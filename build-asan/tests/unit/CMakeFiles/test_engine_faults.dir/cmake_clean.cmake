file(REMOVE_RECURSE
  "../test_engine_faults"
  "../test_engine_faults.pdb"
  "CMakeFiles/test_engine_faults.dir/test_engine_faults.c.o"
  "CMakeFiles/test_engine_faults.dir/test_engine_faults.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_engine_faults.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
