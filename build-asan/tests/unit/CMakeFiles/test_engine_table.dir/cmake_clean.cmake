file(REMOVE_RECURSE
  "../test_engine_table"
  "../test_engine_table.pdb"
  "CMakeFiles/test_engine_table.dir/test_engine_table.c.o"
  "CMakeFiles/test_engine_table.dir/test_engine_table.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_engine_table.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
