file(REMOVE_RECURSE
  "../test_engine_once"
  "../test_engine_once.pdb"
  "CMakeFiles/test_engine_once.dir/test_engine_once.c.o"
  "CMakeFiles/test_engine_once.dir/test_engine_once.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_engine_once.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
