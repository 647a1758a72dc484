file(REMOVE_RECURSE
  "../test_engine_tail"
  "../test_engine_tail.pdb"
  "CMakeFiles/test_engine_tail.dir/test_engine_tail.c.o"
  "CMakeFiles/test_engine_tail.dir/test_engine_tail.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_engine_tail.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
