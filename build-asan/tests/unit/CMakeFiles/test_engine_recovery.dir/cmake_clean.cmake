file(REMOVE_RECURSE
  "../test_engine_recovery"
  "../test_engine_recovery.pdb"
  "CMakeFiles/test_engine_recovery.dir/test_engine_recovery.c.o"
  "CMakeFiles/test_engine_recovery.dir/test_engine_recovery.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_engine_recovery.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
