file(REMOVE_RECURSE
  "../test_engine_expire"
  "../test_engine_expire.pdb"
  "CMakeFiles/test_engine_expire.dir/test_engine_expire.c.o"
  "CMakeFiles/test_engine_expire.dir/test_engine_expire.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_engine_expire.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
