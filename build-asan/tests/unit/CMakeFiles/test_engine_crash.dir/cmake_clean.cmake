file(REMOVE_RECURSE
  "../test_engine_crash"
  "../test_engine_crash.pdb"
  "CMakeFiles/test_engine_crash.dir/test_engine_crash.c.o"
  "CMakeFiles/test_engine_crash.dir/test_engine_crash.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_engine_crash.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
